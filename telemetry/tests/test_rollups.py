"""The dashboards' rollups: what a pass writes, that passes are idempotent and catch late commits,
and that a window read from rollups plus the live tail equals the same window read from the source."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from policy.models import ToolCall
from policy.tests.builders import VALID_PAYMENT
from telemetry import fleet, rollups
from telemetry.models import HOUR, LATENCY_BUCKETS_US, MINUTE, AgentToolUse, ReasonRollup, Rollup, RollupState
from telemetry.rollups import Stats
from telemetry.tests.conftest import ask

pytestmark = pytest.mark.django_db


def test_a_pass_rolls_up_decisions_results_reasons_and_latency(traffic):
    done = rollups.roll_up()
    assert done is not None
    minutes = list(Rollup.objects.filter(span=MINUTE))
    total = Stats()
    for row in minutes:
        total.add(row)
    assert (total.allowed, total.denied, total.escalated) == (3, 2, 1)
    assert (total.results, total.drifted, total.failed) == (2, 1, 0)
    assert total.cost == Decimal("0.25")
    assert sum(total.latency_histogram) == 6
    assert len(total.latency_histogram) == len(LATENCY_BUCKETS_US) + 1
    assert total.latency_us_sum == sum(ToolCall.objects.values_list("latency_us", flat=True))
    reasons = dict(ReasonRollup.objects.filter(span=MINUTE).values_list("code", "count"))
    assert reasons == {"schema_violation": 1, "limit_exceeded": 1, "rule_escalated": 1}
    hours = Stats()
    for row in Rollup.objects.filter(span=HOUR):
        hours.add(row)
    assert (hours.decisions, hours.results, hours.cost) == (6, 2, Decimal("0.25"))
    assert AgentToolUse.objects.get(agent=traffic.agent, tool="payments.transfer")
    assert RollupState.objects.get().rolled_through == done.until


def test_passes_are_idempotent_and_pick_up_a_late_commit(traffic):
    first = rollups.roll_up()
    assert first is not None
    snapshot = sorted(Rollup.objects.values_list("span", "start", "tool", "allowed", "denied", "escalated", "results"))
    rollups.roll_up()
    assert sorted(Rollup.objects.values_list("span", "start", "tool", "allowed", "denied", "escalated", "results")) == (
        snapshot
    )
    # A transaction that committed after the pass, for a time before its end: the next pass counts it.
    late = ToolCall.objects.order_by("created_at").first()
    assert late is not None
    late.pk = None
    late.id = None
    late.idempotency_key = None
    late.save()
    ToolCall.objects.filter(pk=late.pk).update(created_at=first.until - dt.timedelta(seconds=1))
    rollups.roll_up()
    assert sum(Rollup.objects.filter(span=MINUTE).values_list("allowed", flat=True)) == 4


def test_a_window_from_rollups_and_tail_equals_the_window_from_the_source(traffic):
    live_only = fleet.window_data(fleet.WINDOWS["1h"])  # nothing rolled up yet: all of it is the live tail
    rollups.roll_up()
    rolled = fleet.window_data(fleet.WINDOWS["1h"])  # all of it from the rollups, summed in the database
    assert rolled.total == live_only.total
    assert rolled.by_tool == live_only.by_tool  # counters and cost: no per-tool histogram either way
    assert rolled.by_agent == live_only.by_agent
    assert [point.stats for point in rolled.points] == [point.stats for point in live_only.points]
    assert rolled.total.latency_percentile_ms(0.95) == live_only.total.latency_percentile_ms(0.95)
    ask(traffic, {**VALID_PAYMENT, "amount": 300})  # after the pass: only in the tail
    mixed = fleet.window_data(fleet.WINDOWS["1h"])
    assert mixed.total.allowed == live_only.total.allowed + 1
    for name in ("denied", "escalated", "results", "drifted", "cost"):
        assert getattr(mixed.total, name) == getattr(live_only.total, name), name
    assert mixed.reasons == live_only.reasons
    assert sum(point.stats.decisions for point in mixed.points) == mixed.total.decisions == 7
    hourly = fleet.window_data(fleet.WINDOWS["24h"])
    assert (hourly.total.decisions, hourly.total.cost) == (7, Decimal("0.25"))


def test_percentiles_interpolate_within_buckets():
    stats = Stats()
    assert stats.latency_percentile_ms(0.95) is None
    stats.latency_histogram[2] = 100  # all between 500 µs and 1 ms
    assert stats.latency_percentile_ms(0.5) == pytest.approx(0.75)
    assert stats.latency_percentile_ms(0.95) == pytest.approx(0.975)
    stats.latency_histogram[-1] = 100  # half of them slower than the last bound: all we can say is "> 1 s"
    assert stats.latency_percentile_ms(0.95) == pytest.approx(LATENCY_BUCKETS_US[-1] / 1000)


def test_floor_truncates_to_the_period():
    moment = dt.datetime(2026, 11, 23, 10, 37, 42, 123456, tzinfo=dt.UTC)
    assert rollups.floor(moment, MINUTE) == dt.datetime(2026, 11, 23, 10, 37, tzinfo=dt.UTC)
    assert rollups.floor(moment, HOUR) == dt.datetime(2026, 11, 23, 10, tzinfo=dt.UTC)


def test_the_command_backfills_history(traffic, capsys):
    ToolCall.objects.update(created_at=timezone.now() - dt.timedelta(days=3))
    call_command("telemetry_rollup", "--all")
    assert "minute rows" in capsys.readouterr().out
    assert sum(Rollup.objects.filter(span=HOUR).values_list("allowed", flat=True)) == 3


def test_the_command_with_nothing_to_do_says_so(db, capsys):
    call_command("telemetry_rollup")
    assert "Nothing to roll up" in capsys.readouterr().out
