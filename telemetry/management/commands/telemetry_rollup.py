"""Rebuild the dashboards' rollups: the recent minutes by default, or all history with --all."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Min
from django.utils.dateparse import parse_datetime

from policy.models import ToolCall
from telemetry import rollups


class Command(BaseCommand):
    help = (
        "Rebuild the per-minute and per-hour rollups behind the dashboards. Celery beat does this every "
        "WARDEN_ROLLUP_SECONDS; run it by hand after restoring a database or to backfill history (--all)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--all", action="store_true", help="Rebuild from the first tool call ever made.")
        parser.add_argument("--since", help="Rebuild from this ISO 8601 time (UTC when no offset is given).")

    def handle(self, *args: Any, **options: Any) -> None:
        since: dt.datetime | None = None
        if options["since"]:
            since = parse_datetime(options["since"])
            if since is None:
                raise CommandError(f"--since: {options['since']!r} is not an ISO 8601 time, e.g. 2026-11-23T08:00.")
            if since.tzinfo is None:
                since = since.replace(tzinfo=dt.UTC)
        elif options["all"]:
            since = ToolCall.objects.aggregate(first=Min("created_at"))["first"]
        started = time.perf_counter()
        done = rollups.roll_up(since=since) if since is not None or not options["all"] else None
        elapsed = time.perf_counter() - started
        if done is None:
            self.stdout.write("Nothing to roll up: no tool call has been made yet.")
            return
        self.stdout.write(
            f"Rolled up {done.since:%Y-%m-%d %H:%M} to {done.until:%Y-%m-%d %H:%M:%S} UTC: "
            f"{done.minutes} minute rows, {done.hours} hour rows in {elapsed:.1f} s."
        )
