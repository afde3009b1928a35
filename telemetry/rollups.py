"""Build the dashboards' rollups from the source tables, and read a window of them.

`roll_up()` (Celery beat, every WARDEN_ROLLUP_SECONDS, or `manage.py telemetry_rollup`) rebuilds
whole minutes from tool calls, results and guardian assessments, then the hours those minutes
belong to. Each pass also redoes the last few minutes before the previous one, so a transaction
that committed a little late is counted on the next pass. `RollupState.rolled_through` marks the
instant the rollups are complete to; the pages add what happened since (`aggregate` over that
short tail, read live), so a new decision shows on the next refresh, not the next pass.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from guardian.choices import Action
from guardian.models import Assessment
from policy.choices import ResultStatus
from policy.engine import Outcome
from policy.models import ToolCall
from telemetry.models import HOUR, LATENCY_BUCKETS_US, MINUTE, AgentToolUse, ReasonRollup, Rollup, RollupState

# Minutes before the previous pass's end that every pass rebuilds (late commits, late results).
RECOMPUTE = dt.timedelta(minutes=5)
# A backfill works through history an hour per transaction, so memory stays bounded.
CHUNK = dt.timedelta(hours=1)
FLAGGED = (Action.FLAG, Action.ESCALATE, Action.QUARANTINE)

Key = tuple[dt.datetime, Any, str]  # (period start, agent id, tool or reason code)


def floor(moment: dt.datetime, span: int) -> dt.datetime:
    """The start of the period of `span` seconds that holds `moment` (UTC)."""
    return dt.datetime.fromtimestamp(int(moment.timestamp()) // span * span, tz=dt.UTC)


@dataclass
class Stats:
    """The additive figures of a rollup row (or of several merged)."""

    allowed: int = 0
    denied: int = 0
    escalated: int = 0
    latency_us_sum: int = 0
    latency_histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_US) + 1))
    results: int = 0
    failed: int = 0
    drifted: int = 0
    cost: Decimal = Decimal(0)
    assessed: int = 0
    flagged: int = 0

    FIELDS: ClassVar[tuple[str, ...]] = (
        "allowed",
        "denied",
        "escalated",
        "latency_us_sum",
        "results",
        "failed",
        "drifted",
        "assessed",
        "flagged",
    )

    @property
    def decisions(self) -> int:
        return self.allowed + self.denied + self.escalated

    def add(self, other: Stats | Rollup) -> None:
        for name in self.FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.cost += Decimal(other.cost or 0)
        for index, count in enumerate(other.latency_histogram or ()):
            self.latency_histogram[index] += count

    def latency_percentile_ms(self, fraction: float) -> float | None:
        """The latency under which `fraction` of decisions fell, interpolated within its bucket."""
        total = sum(self.latency_histogram)
        if not total:
            return None
        rank, seen, lower = fraction * total, 0, 0
        for upper, count in zip((*LATENCY_BUCKETS_US, None), self.latency_histogram, strict=True):
            if count and seen + count >= rank:
                if upper is None:  # the open bucket: all we know is "slower than the last bound"
                    return lower / 1000
                return (lower + (upper - lower) * (rank - seen) / count) / 1000
            seen += count
            lower = upper or lower
        return lower / 1000


@dataclass
class Aggregate:
    """One stretch of time aggregated: figures per (period, agent, tool) and reason counts."""

    stats: dict[Key, Stats] = field(default_factory=lambda: defaultdict(Stats))
    reasons: Counter[Key] = field(default_factory=Counter)


def aggregate(since: dt.datetime, until: dt.datetime, *, agent_id: Any = None) -> Aggregate:
    """Aggregate [since, until) per minute from the source tables (of one agent, if given): four queries.

    Reason codes are the exception: they live in a JSON list, so the (few) denied and escalated
    calls are read and counted here rather than in SQL that differs per database.
    """
    result = Aggregate()
    minute = TruncMinute("created_at", tzinfo=dt.UTC)
    whose = Q(agent_id=agent_id) if agent_id is not None else Q()
    calls = ToolCall.objects.filter(whose, created_at__gte=since, created_at__lt=until).order_by()
    buckets = {
        f"le{index}": Count("pk", filter=Q(latency_us__lte=bound)) for index, bound in enumerate(LATENCY_BUCKETS_US)
    }
    for row in (
        calls.annotate(period=minute)
        .values("period", "agent_id", "tool")
        .annotate(
            allowed=Count("pk", filter=Q(escalated=False, decision=Outcome.ALLOW)),
            denied=Count("pk", filter=Q(escalated=False, decision=Outcome.DENY)),
            escalated_=Count("pk", filter=Q(escalated=True)),
            latency=Sum("latency_us"),
            total=Count("pk"),
            **buckets,
        )
    ):
        stats = result.stats[(row["period"], row["agent_id"], row["tool"])]
        stats.allowed, stats.denied, stats.escalated = row["allowed"], row["denied"], row["escalated_"]
        stats.latency_us_sum = row["latency"] or 0
        cumulative = [row[f"le{index}"] for index in range(len(LATENCY_BUCKETS_US))] + [row["total"]]
        stats.latency_histogram = [cumulative[0]] + [b - a for a, b in itertools.pairwise(cumulative)]

    reported = ToolCall.objects.filter(whose, result_reported_at__gte=since, result_reported_at__lt=until).order_by()
    for row in (
        reported.annotate(period=TruncMinute("result_reported_at", tzinfo=dt.UTC))
        .values("period", "agent_id", "tool")
        .annotate(
            results=Count("pk"),
            failed=Count("pk", filter=Q(result_status=ResultStatus.FAILED)),
            drifted=Count("pk", filter=Q(contract_drift=True)),
            cost_=Sum("cost"),
        )
    ):
        stats = result.stats[(row["period"], row["agent_id"], row["tool"])]
        stats.results, stats.failed, stats.drifted = row["results"], row["failed"], row["drifted"]
        stats.cost = Decimal(row["cost_"] or 0)

    assessments = Assessment.objects.filter(whose, created_at__gte=since, created_at__lt=until).order_by()
    for row in (
        assessments.annotate(period=minute)
        .values("period", "agent_id", "tool")
        .annotate(assessed_=Count("pk"), flagged_=Count("pk", filter=Q(action__in=FLAGGED)))
    ):
        stats = result.stats[(row["period"], row["agent_id"], row["tool"])]
        stats.assessed, stats.flagged = row["assessed_"], row["flagged_"]

    not_allowed = calls.filter(Q(escalated=True) | Q(decision=Outcome.DENY))
    for period, agent_id, reasons in not_allowed.annotate(period=minute).values_list("period", "agent_id", "reasons"):
        for code in {reason.get("code") for reason in reasons or () if isinstance(reason, dict)}:
            if code:
                result.reasons[(period, agent_id, code)] += 1
    return result


@dataclass(frozen=True)
class PassResult:
    since: dt.datetime
    until: dt.datetime
    minutes: int  # rollup rows written for minutes
    hours: int  # rollup rows written for hours


def roll_up(until: dt.datetime | None = None, *, since: dt.datetime | None = None) -> PassResult | None:
    """Rebuild the rollups from `since` (default: a little before the previous pass) to `until` (now).

    None when there is nothing to roll up yet (no tool call was ever made).
    """
    until = until or timezone.now()
    if since is None:
        state = RollupState.objects.filter(pk=1).first()
        if state is not None and state.rolled_through is not None:
            since = min(state.rolled_through, until) - RECOMPUTE
        else:
            since = ToolCall.objects.aggregate(first=Min("created_at"))["first"]
            if since is None:
                return None
    start = floor(since, MINUTE)
    minutes = hours = 0
    for chunk_start, chunk_end in _chunks(start, until):
        with transaction.atomic():
            state, _ = RollupState.objects.select_for_update().get_or_create(pk=1)
            minutes += _write_minutes(chunk_start, chunk_end)
            hours += _write_hours(floor(chunk_start, HOUR), chunk_end)
            if state.rolled_through is None or state.rolled_through < chunk_end:
                state.rolled_through = chunk_end
                state.save(update_fields=["rolled_through", "updated_at"])
    return PassResult(since=start, until=until, minutes=minutes, hours=hours)


def _chunks(start: dt.datetime, until: dt.datetime) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    while start < until:
        end = min(floor(start, HOUR) + CHUNK, until)
        yield start, end
        start = end


def _write_minutes(since: dt.datetime, until: dt.datetime) -> int:
    fresh = aggregate(since, until)
    Rollup.objects.filter(span=MINUTE, start__gte=since, start__lt=until).delete()
    ReasonRollup.objects.filter(span=MINUTE, start__gte=since, start__lt=until).delete()
    Rollup.objects.bulk_create(_rollups(MINUTE, fresh.stats.items()), batch_size=2000)
    ReasonRollup.objects.bulk_create(
        (
            ReasonRollup(span=MINUTE, start=start, agent_id=agent_id, code=code, count=count)
            for (start, agent_id, code), count in fresh.reasons.items()
        ),
        batch_size=2000,
    )
    _remember_tool_use(fresh)
    return len(fresh.stats)


def _write_hours(since: dt.datetime, until: dt.datetime) -> int:
    """Rebuild the hours in [since, until) from their minute rows (the last one may be partial)."""
    stats: dict[Key, Stats] = defaultdict(Stats)
    for row in Rollup.objects.filter(span=MINUTE, start__gte=since, start__lt=until).iterator(chunk_size=5000):
        stats[(floor(row.start, HOUR), row.agent_id, row.tool)].add(row)
    reasons = ReasonRollup.objects.filter(span=MINUTE, start__gte=since, start__lt=until)
    hourly: Counter[Key] = Counter()
    for start, agent_id, code, total in reasons.values_list("start", "agent_id", "code", "count"):
        hourly[(floor(start, HOUR), agent_id, code)] += total
    Rollup.objects.filter(span=HOUR, start__gte=since, start__lt=until).delete()
    ReasonRollup.objects.filter(span=HOUR, start__gte=since, start__lt=until).delete()
    Rollup.objects.bulk_create(_rollups(HOUR, stats.items()), batch_size=2000)
    ReasonRollup.objects.bulk_create(
        (
            ReasonRollup(span=HOUR, start=start, agent_id=agent_id, code=code, count=count)
            for (start, agent_id, code), count in hourly.items()
        ),
        batch_size=2000,
    )
    return len(stats)


def _rollups(span: int, items: Iterable[tuple[Key, Stats]]) -> Iterator[Rollup]:
    for (start, agent_id, tool), stats in items:
        yield Rollup(
            span=span,
            start=start,
            agent_id=agent_id,
            tool=tool,
            allowed=stats.allowed,
            denied=stats.denied,
            escalated=stats.escalated,
            latency_us_sum=stats.latency_us_sum,
            latency_histogram=stats.latency_histogram,
            results=stats.results,
            failed=stats.failed,
            drifted=stats.drifted,
            cost=stats.cost,
            assessed=stats.assessed,
            flagged=stats.flagged,
        )


def _remember_tool_use(fresh: Aggregate) -> None:
    """Keep, per agent and tool, the first and last minute a call was made (the sprawl report's memory)."""
    seen: dict[tuple[Any, str], tuple[dt.datetime, dt.datetime]] = {}
    for (start, agent_id, tool), stats in fresh.stats.items():
        if not stats.decisions:
            continue
        first, last = seen.get((agent_id, tool), (start, start))
        seen[(agent_id, tool)] = (min(first, start), max(last, start))
    if not seen:
        return
    existing = {
        (use.agent_id, use.tool): use
        for use in AgentToolUse.objects.filter(agent_id__in={agent for agent, _ in seen}, tool__in={t for _, t in seen})
    }
    new = []
    for (agent_id, tool), (first, last) in seen.items():
        use = existing.get((agent_id, tool))
        if use is None:
            new.append(AgentToolUse(agent_id=agent_id, tool=tool, first_call_at=first, last_call_at=last))
        elif first < use.first_call_at or last > use.last_call_at:
            use.first_call_at, use.last_call_at = min(first, use.first_call_at), max(last, use.last_call_at)
            use.save(update_fields=["first_call_at", "last_call_at"])
    AgentToolUse.objects.bulk_create(new)


def rolled_through() -> dt.datetime | None:
    return RollupState.objects.filter(pk=1).values_list("rolled_through", flat=True).first()


def last_call_by_agent() -> dict[Any, dt.datetime]:
    """When each agent last made any call, as the rollups remember it."""
    return dict(
        AgentToolUse.objects.values("agent_id").annotate(last=Max("last_call_at")).values_list("agent_id", "last")
    )
