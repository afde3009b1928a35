"""Enumerations of the guardian app."""

from __future__ import annotations

from django.db import models


class Stage(models.TextChoices):
    """When a subject was judged."""

    PRECHECK = "precheck", "Before the decision (pre-check)"
    RESULT = "result", "After the result was reported"


class Action(models.TextChoices):
    """What a guardian did about a value, from nothing to the circuit breaker (ordered)."""

    NONE = "none", "None"
    FLAG = "flag", "Flagged"
    ESCALATE = "escalate", "Escalated to a human"
    QUARANTINE = "quarantine", "Quarantined the agent"


ACTION_RANK = {Action.NONE: 0, Action.FLAG: 1, Action.ESCALATE: 2, Action.QUARANTINE: 3}
