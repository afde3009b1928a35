"""Celery tasks of telemetry: keep the dashboards' rollups current."""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from telemetry import rollups


@shared_task(name="telemetry.rollup", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=3)
def rollup() -> int:
    """Rebuild the recent minutes and hours (idempotent: a repeated or overlapping pass rewrites the same rows)."""
    done = rollups.roll_up()
    return done.minutes if done is not None else 0
