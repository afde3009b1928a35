"""Guardians, what they found, and the quarantines they started.

A guardian is a registered agent (role `guardian`) with a configuration: which agents and tools
it watches, which scorers it combines with what weights, and three thresholds. Every time it
judges a subject it stores one `Assessment` (its combined value and the action it took) with the
`ScoreRecord` of each scorer; a `Quarantine` is the circuit breaker one of them (or a human)
tripped, open until a human releases the agent with a reason. Rows are written only by
`guardian.services`, each with its audit record in the same transaction.

This package also holds the guardians' model artifacts (the trained classifier, GGUF files) and
their model card, README.md: "models" in both senses, kept side by side.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from guardian.choices import Action, Stage
from policy.models import ToolCall
from registry.models import Agent, Role

UNIT = [MinValueValidator(0.0), MaxValueValidator(1.0)]
GUARDIAN_ROLE = "guardian"  # the registry role every guardian's agent holds


def default_scorers() -> dict[str, float]:
    """The fast scorers at full weight; the SLM scorer is added where a model is configured."""
    return {"content": 1.0, "classifier": 1.0, "behaviour": 0.5}


class Guardian(models.Model):
    """A watcher: what it watches, how it scores, and when it flags, escalates or quarantines."""

    agent = models.OneToOneField(
        Agent,
        on_delete=models.PROTECT,
        related_name="guardian_profile",
        help_text="The guardian's own registry entry (role 'guardian'): its owner, scope and lifecycle.",
    )
    enabled = models.BooleanField(default=True)
    watched_agents = models.ManyToManyField(
        Agent,
        blank=True,
        related_name="watching_guardians",
        help_text="Agents it watches; none selected and no roles: every agent except guardians.",
    )
    watched_roles = models.ManyToManyField(
        Role, blank=True, related_name="watching_guardians", help_text="Agents with these roles are watched too."
    )
    watched_tools = models.JSONField(
        default=list,
        blank=True,
        help_text='Tool names, or prefixes ending in ".*" such as "payments.*"; empty: every tool.',
    )
    scorers = models.JSONField(
        default=default_scorers,
        help_text='Scorer name -> weight in [0, 1], e.g. {"content": 1.0, "classifier": 1.0, "slm": 0.8}.',
    )
    flag_threshold = models.FloatField(default=0.5, validators=UNIT, help_text="At or above: flagged.")
    escalate_threshold = models.FloatField(
        default=0.7, validators=UNIT, help_text="At or above: a human decides (the call, or a review of its result)."
    )
    quarantine_threshold = models.FloatField(
        default=0.9, validators=UNIT, help_text="At or above: the watched agent is quarantined."
    )
    precheck = models.BooleanField(
        default=True,
        help_text="Run its fast scorers on the decision path for tools marked for pre-checks.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agent__name"]
        permissions = [("release_quarantine", "Can release a quarantined agent")]
        constraints = [
            models.CheckConstraint(
                condition=Q(flag_threshold__lte=models.F("escalate_threshold"))
                & Q(escalate_threshold__lte=models.F("quarantine_threshold")),
                name="guardian_thresholds_ordered",
                violation_error_message="Thresholds must be ordered: flag ≤ escalate ≤ quarantine.",
            )
        ]

    def __str__(self) -> str:
        return self.agent.name

    def clean(self) -> None:
        from guardian.scorers import registry

        errors: dict[str, list[str]] = {}
        if self.agent_id is not None:
            role = Agent.objects.filter(pk=self.agent_id).values_list("role__slug", flat=True).first()
            if role != GUARDIAN_ROLE:
                errors["agent"] = [f"A guardian is an agent with the role '{GUARDIAN_ROLE}' (this one has {role!r})."]
        if not isinstance(self.scorers, dict) or not self.scorers:
            errors["scorers"] = ['Give at least one scorer and its weight, e.g. {"content": 1.0}.']
        else:
            known = set(registry.names())
            for name, weight in self.scorers.items():
                if name not in known:
                    errors.setdefault("scorers", []).append(
                        f"Unknown scorer {name!r}; known: {', '.join(sorted(known))}."
                    )
                elif isinstance(weight, bool) or not isinstance(weight, int | float) or not 0 <= weight <= 1:
                    errors.setdefault("scorers", []).append(f"The weight of {name!r} must be a number in [0, 1].")
        if not isinstance(self.watched_tools, list) or not all(isinstance(tool, str) for tool in self.watched_tools):
            errors["watched_tools"] = ['A list of tool names or prefixes, e.g. ["payments.*", "email.send"].']
        if not self.flag_threshold <= self.escalate_threshold <= self.quarantine_threshold:
            errors["escalate_threshold"] = ["Thresholds must be ordered: flag ≤ escalate ≤ quarantine."]
        if errors:
            raise ValidationError(errors)

    def watches_tool(self, tool: str) -> bool:
        if not self.watched_tools:
            return True
        return any(
            tool == pattern or (pattern.endswith(".*") and tool.startswith(pattern[:-1]))
            for pattern in self.watched_tools
        )

    def action_for(self, value: float) -> Action:
        if value >= self.quarantine_threshold:
            return Action.QUARANTINE
        if value >= self.escalate_threshold:
            return Action.ESCALATE
        if value >= self.flag_threshold:
            return Action.FLAG
        return Action.NONE

    def as_config(self) -> dict[str, Any]:
        """The configuration as recorded in the audit trail."""
        return {
            "guardian": str(self.agent_id),
            "enabled": self.enabled,
            "watched_agents": sorted(str(pk) for pk in self.watched_agents.values_list("pk", flat=True)),
            "watched_roles": sorted(self.watched_roles.values_list("slug", flat=True)),
            "watched_tools": list(self.watched_tools),
            "scorers": dict(self.scorers),
            "thresholds": {
                "flag": self.flag_threshold,
                "escalate": self.escalate_threshold,
                "quarantine": self.quarantine_threshold,
            },
            "precheck": self.precheck,
        }


class Assessment(models.Model):
    """One guardian's judgement of one subject: the combined value, and what it did about it.

    Unique per (guardian, tool call, stage, subject): a scoring task that runs twice (a worker
    killed after its commit, a redelivered message) finds the row and does nothing.
    """

    id = models.BigAutoField(primary_key=True)
    guardian = models.ForeignKey(Guardian, on_delete=models.PROTECT, related_name="assessments")
    tool_call = models.ForeignKey(ToolCall, on_delete=models.PROTECT, related_name="assessments")
    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="assessments", help_text="Watched agent.")
    tool = models.CharField(max_length=128)
    stage = models.CharField(max_length=16, choices=Stage.choices)
    subject = models.CharField(max_length=16, help_text="tool_call, tool_output or agent_output.")
    value = models.FloatField(validators=UNIT)
    action = models.CharField(max_length=16, choices=Action.choices, db_index=True)
    reasons = models.JSONField(default=list, blank=True, help_text="The findings that drove the value.")
    disagreement = models.BooleanField(
        default=False, help_text="Another guardian judged the same subject beyond the margin apart."
    )
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["guardian", "tool_call", "stage", "subject"], name="guardian_assessment_once"
            )
        ]
        indexes = [models.Index(fields=["agent", "-created_at"], name="guardian_assessment_agent")]

    def __str__(self) -> str:
        return f"{self.guardian} on {self.tool} ({self.subject}): {self.value:.2f} {self.action}"

    @property
    def flagged(self) -> bool:
        return self.action != Action.NONE


class ScoreRecord(models.Model):
    """One scorer's score inside an assessment."""

    assessment = models.ForeignKey(Assessment, on_delete=models.CASCADE, related_name="scores")
    scorer = models.CharField(max_length=32, db_index=True)
    weight = models.FloatField(validators=UNIT)
    value = models.FloatField(validators=UNIT)
    label = models.CharField(max_length=16)
    reasons = models.JSONField(default=list, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    latency_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["assessment", "-value"]
        constraints = [models.UniqueConstraint(fields=["assessment", "scorer"], name="guardian_score_once")]

    def __str__(self) -> str:
        return f"{self.scorer}: {self.value:.3f} ({self.label})"


class Quarantine(models.Model):
    """A tripped circuit breaker: the agent's authority is frozen until a human releases it with a reason."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, related_name="quarantines")
    guardian = models.ForeignKey(
        Guardian,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="quarantines",
        help_text="Empty when a person quarantined the agent.",
    )
    assessment = models.ForeignKey(
        Assessment, on_delete=models.PROTECT, null=True, blank=True, related_name="quarantines"
    )
    tool_call = models.ForeignKey(ToolCall, on_delete=models.PROTECT, null=True, blank=True, related_name="quarantines")
    reason = models.TextField()
    started_at = models.DateTimeField()
    started_by_label = models.CharField(max_length=200)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    released_by_label = models.CharField(max_length=200, blank=True)
    release_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent"], condition=Q(released_at__isnull=True), name="guardian_one_open_quarantine"
            )
        ]

    def __str__(self) -> str:
        state = "released" if self.released_at else "open"
        return f"{self.agent.slug} quarantined {self.started_at:%Y-%m-%d %H:%M} ({state})"

    @property
    def is_open(self) -> bool:
        return self.released_at is None


class AgentProfile(models.Model):
    """What a guardian knows about an agent's normal behaviour, kept incrementally.

    `baseline` is the behaviour scorer's structure (tool mix, rate, magnitudes, hours, deny
    rate); `destinations` the recipients, hosts and accounts the agent sent something to (for
    the exfiltration check). Both are bounded. `observed_until` is how far the agent's calls
    have been folded in.
    """

    agent = models.OneToOneField(Agent, on_delete=models.CASCADE, primary_key=True, related_name="guardian_baseline")
    baseline = models.JSONField(default=dict)
    destinations = models.JSONField(default=list)
    observed_until = models.DateTimeField(null=True, blank=True)
    observations = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"baseline of {self.agent_id} ({self.observations} calls)"
