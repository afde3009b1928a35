"""Celery tasks of the guardians: score a reported result, and catch up on any the broker lost."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from guardian import services
from guardian.models import Assessment
from policy.models import ToolCall

CATCH_UP_WINDOW = dt.timedelta(hours=1)


@shared_task(
    name="guardian.score_result",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
)
def score_result(call_id: str) -> int:
    """Judge one reported call. Idempotent: a redelivered message finds the assessments and stores nothing."""
    return len(services.score_result(call_id))


@shared_task(name="guardian.catch_up")
def catch_up() -> int:
    """Queue scoring for recent results nobody scored (the broker was down when they were reported)."""
    since = timezone.now() - CATCH_UP_WINDOW
    scored = Assessment.objects.filter(stage="result", tool_call_id__isnull=False).values("tool_call_id")
    settled_before = timezone.now() - dt.timedelta(seconds=30)  # give the on-commit task its chance first
    missing = (
        ToolCall.objects.filter(result_reported_at__gte=since, result_reported_at__lte=settled_before)
        .exclude(pk__in=scored)
        .values_list("pk", "agent_id", "tool")[:500]
    )
    queued = 0
    for call_id, agent_id, tool in missing:
        if services.guardians_for(str(agent_id), tool):
            score_result.delay(str(call_id))
            queued += 1
    return queued
