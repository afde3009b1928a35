"""Reads behind the fleet dashboards: a window of rollups plus the live tail, and what they mean.

Every figure over time comes from telemetry.rollups (minutes for short windows, hours for long
ones) plus `rollups.aggregate` over the seconds since the last rollup pass; nothing here scans
the tool-call table over a window. Each page's reads are a fixed handful of queries whatever
the fleet's size (the page tests hold them to it).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, IntegerField, Max, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from approvals.choices import ApprovalState
from approvals.models import Approval
from audit.models import AuditRecord
from audit.sensitive import redact
from guardian.models import Assessment, Quarantine
from policy.engine import Outcome
from policy.models import ToolCall
from registry.choices import AgentStatus
from registry.models import Agent, Credential
from telemetry import rollups
from telemetry.models import HOUR, LATENCY_BUCKETS_US, MINUTE, ReasonRollup, Rollup
from telemetry.rollups import Stats


@dataclass(frozen=True)
class Window:
    key: str
    label: str
    length: dt.timedelta
    span: int  # which rollups to read: minutes or hours
    step: int  # seconds per point on the charts


WINDOWS = {
    window.key: window
    for window in (
        Window("15m", "15 minutes", dt.timedelta(minutes=15), MINUTE, 60),
        Window("1h", "1 hour", dt.timedelta(hours=1), MINUTE, 60),
        Window("6h", "6 hours", dt.timedelta(hours=6), MINUTE, 300),
        Window("24h", "24 hours", dt.timedelta(hours=24), HOUR, 3600),
        Window("7d", "7 days", dt.timedelta(days=7), HOUR, 3600),
    )
}
DEFAULT_WINDOW = "1h"


def window_for(key: str | None) -> Window:
    return WINDOWS.get(key or "", WINDOWS[DEFAULT_WINDOW])


@dataclass
class Point:
    at: dt.datetime
    stats: Stats = field(default_factory=Stats)


@dataclass
class WindowData:
    """A window's figures: over time (one point per chart step), in total, per tool, per agent, per reason.

    Latency percentiles are kept for the points and the total; per tool and per agent only the
    counters and the cost (their histograms stay empty: summing them is the costly part).
    """

    window: Window
    start: dt.datetime
    end: dt.datetime
    points: list[Point]
    total: Stats
    by_tool: dict[str, Stats]
    by_agent: dict[Any, Stats]
    reasons: Counter[str]
    reasons_by_agent: dict[Any, Counter[str]]


def window_data(window: Window, *, agent_id: Any = None, now: dt.datetime | None = None) -> WindowData:
    """Read a window from the rollups and add the live tail since the last pass (9 queries).

    The rollup rows are summed in the database, per chart point, per tool and per agent
    (histogram buckets included), so a 7-day window costs three grouped queries, not a loop over
    tens of thousands of rows here; the tail's few minutes are merged in Python.
    """
    now = now or timezone.now()
    start = rollups.floor(now, window.span) - window.length + dt.timedelta(seconds=window.span)
    step_start = rollups.floor(start, window.step)
    count = int((now - step_start).total_seconds() // window.step) + 1
    points = [Point(at=step_start + dt.timedelta(seconds=window.step * index)) for index in range(count)]
    total = Stats()
    by_tool: dict[str, Stats] = defaultdict(Stats)
    by_agent: dict[Any, Stats] = defaultdict(Stats)
    reasons: Counter[str] = Counter()
    reasons_by_agent: dict[Any, Counter[str]] = defaultdict(Counter)

    def take(at: dt.datetime, agent: Any, tool: str, stats: Stats) -> None:
        index = int((at - step_start).total_seconds() // window.step)
        if 0 <= index < count:
            points[index].stats.add(stats)
        total.add(stats)
        counters = dataclasses.replace(stats, latency_histogram=[])
        by_tool[tool].add(counters)
        by_agent[agent].add(counters)

    def reason(agent: Any, code: str, times: int) -> None:
        reasons[code] += times
        reasons_by_agent[agent][code] += times

    scope = Q(span=window.span, start__gte=start) & (Q(agent_id=agent_id) if agent_id is not None else Q())
    rows = Rollup.objects.filter(scope)
    for at, stats in _summed(rows, "start", histogram=True):
        index = int((at - step_start).total_seconds() // window.step)
        if 0 <= index < count:
            points[index].stats.add(stats)
        total.latency_histogram = [a + b for a, b in zip(total.latency_histogram, stats.latency_histogram, strict=True)]
    for tool, stats in _summed(rows, "tool"):
        by_tool[tool].add(stats)
        total.add(stats)  # the counters; the histogram came with the points
    for agent, stats in _summed(rows, "agent_id"):
        by_agent[agent].add(stats)
    rolled_reasons = ReasonRollup.objects.filter(scope).values("agent_id", "code").annotate(times=Sum("count"))
    for row in rolled_reasons.order_by():
        reason(row["agent_id"], row["code"], row["times"])

    through = rollups.rolled_through()
    tail_start = max(through, start) if through is not None else start
    if tail_start < now:
        tail = rollups.aggregate(tail_start, now, agent_id=agent_id)
        for (minute, agent, tool), stats in tail.stats.items():
            take(minute, agent, tool, stats)
        for (_, agent, code), times in tail.reasons.items():
            reason(agent, code, times)
    return WindowData(
        window=window,
        start=start,
        end=now,
        points=points,
        total=total,
        by_tool=dict(by_tool),
        by_agent=dict(by_agent),
        reasons=reasons,
        reasons_by_agent=dict(reasons_by_agent),
    )


_BUCKETS = range(len(LATENCY_BUCKETS_US) + 1)
# One grouped query's sums: every counter and the cost ...
_SUMS = {**{f"{name}_sum": Sum(name) for name in Stats.FIELDS}, "cost_sum": Sum("cost")}
# ... and, where a percentile is shown, each latency bucket of the JSON histogram (the costly part).
_BUCKET_SUMS = {
    f"bucket_{index}": Sum(Cast(KeyTextTransform(str(index), "latency_histogram"), IntegerField()))
    for index in _BUCKETS
}


def _summed(rows: QuerySet[Rollup], group: str, *, histogram: bool = False) -> Iterator[tuple[Any, Stats]]:
    """Rollup rows summed per `group` (a field) in the database; latency buckets only when asked for."""
    for row in rows.values(group).annotate(**_SUMS, **(_BUCKET_SUMS if histogram else {})).order_by():
        stats = Stats()
        for name in Stats.FIELDS:
            setattr(stats, name, row[f"{name}_sum"] or 0)
        stats.cost = Decimal(row["cost_sum"] or 0)
        if histogram:
            stats.latency_histogram = [row[f"bucket_{index}"] or 0 for index in _BUCKETS]
        yield row[group], stats


def rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


# Agents needing attention ---------------------------------------------------------------------


@dataclass
class Attention:
    """An agent someone should look at, with every reason and a score to rank by."""

    agent: Agent
    score: int = 0
    reasons: list[str] = field(default_factory=list)

    def because(self, weight: int, reason: str) -> None:
        self.score += weight
        self.reasons.append(reason)


# A deny rate at least this high, over at least this many decisions, needs a look.
DENY_RATE_ALERT, DENY_RATE_MIN_CALLS = 0.25, 5
CREDENTIAL_WARNING = dt.timedelta(days=7)
LOOPING_CODES = ("loop_detected", "rate_limited", "budget_exceeded")


def needing_attention(data: WindowData, *, limit: int = 10, now: dt.datetime | None = None) -> list[Attention]:
    """Agents ranked by how urgently a human should look, each with the reasons (3 queries).

    Quarantine outranks everything; then guardian flags, humans waiting on the agent, a high
    deny rate, loop and budget stops, and keys about to expire.
    """
    now = now or timezone.now()
    found: dict[Any, Attention] = {}
    agents = {
        agent.pk: agent
        for agent in Agent.objects.exclude(status__in=(AgentStatus.RETIRED, AgentStatus.DRAFT)).select_related("owner")
    }

    def attention(agent_id: Any) -> Attention | None:
        agent = agents.get(agent_id)
        if agent is None:
            return None
        return found.setdefault(agent_id, Attention(agent=agent))

    for agent in agents.values():
        if agent.status == AgentStatus.QUARANTINED:
            attention(agent.pk).because(100, "quarantined")  # type: ignore[union-attr]
        elif agent.status == AgentStatus.SUSPENDED:
            attention(agent.pk).because(10, "suspended")  # type: ignore[union-attr]
    for agent_id, stats in data.by_agent.items():
        item = attention(agent_id)
        if item is None:
            continue
        if stats.flagged:
            item.because(20 * min(stats.flagged, 5), f"{stats.flagged} call(s) flagged by guardians")
        deny_rate = rate(stats.denied, stats.decisions)
        if deny_rate is not None and stats.decisions >= DENY_RATE_MIN_CALLS and deny_rate >= DENY_RATE_ALERT:
            item.because(int(40 * deny_rate), f"{deny_rate:.0%} of {stats.decisions} calls denied")
        if stats.failed and stats.results and stats.failed / stats.results >= DENY_RATE_ALERT:
            item.because(10, f"{stats.failed} of {stats.results} results failed")
        if stats.drifted:
            item.because(5, f"{stats.drifted} result(s) broke the output contract")
    for agent_id, codes in data.reasons_by_agent.items():
        stopped = {code: codes[code] for code in LOOPING_CODES if codes.get(code)}
        item = attention(agent_id) if stopped else None
        if item is not None:
            item.because(15, ", ".join(f"{code} x{times}" for code, times in stopped.items()))
    waiting = (
        Approval.objects.filter(state=ApprovalState.PENDING)
        .values("agent_id")
        .annotate(count=Count("pk"))
        .values_list("agent_id", "count")
    )
    for agent_id, pending in waiting:
        item = attention(agent_id)
        if item is not None:
            item.because(5 * min(pending, 6), f"{pending} approval(s) waiting for a human")
    expiring = Credential.objects.filter(
        agent_id__in=list(agents),
        revoked_at__isnull=True,
        expires_at__gte=now - CREDENTIAL_WARNING,  # longer expired keys are the sprawl report's
        expires_at__lt=now + CREDENTIAL_WARNING,
    ).values_list("agent_id", "expires_at")
    for agent_id, expires_at in expiring:
        item = attention(agent_id)
        if item is not None and expires_at is not None:
            verb = "expired" if expires_at <= now else "expires"
            item.because(8, f"a key {verb} {expires_at:%Y-%m-%d}")
    ranked = sorted((item for item in found.values() if item.score), key=lambda item: (-item.score, item.agent.slug))
    return ranked[:limit]


# The fleet now (not over a window) -------------------------------------------------------------


@dataclass(frozen=True)
class FleetNow:
    pending_approvals: int
    quarantined: list[Quarantine]
    agents_by_status: dict[str, int]


def fleet_now() -> FleetNow:
    """Pending approvals, open quarantines and agents per status (3 queries)."""
    by_status = dict(
        Agent.objects.order_by().values("status").annotate(count=Count("pk")).values_list("status", "count")
    )
    return FleetNow(
        pending_approvals=Approval.objects.filter(state=ApprovalState.PENDING).count(),
        quarantined=list(
            Quarantine.objects.filter(released_at__isnull=True).select_related("agent").order_by("-started_at")
        ),
        agents_by_status={status: by_status.get(status, 0) for status in AgentStatus.values},
    )


def cost_by_agent(data: WindowData) -> list[tuple[Any, Decimal]]:
    return sorted(
        ((agent_id, stats.cost) for agent_id, stats in data.by_agent.items() if stats.cost),
        key=lambda pair: -pair[1],
    )


# The live decision feed ------------------------------------------------------------------------

FEED_PAGE = 50
# The feed shows who asked for what and what Warden said; arguments and outputs stay on the call page.
FEED_DEFERRED = ("arguments", "context", "output", "usage", "drift", "shadow")


@dataclass(frozen=True)
class FeedFilters:
    agent_id: Any = None
    tool: str = ""
    outcome: str = ""  # the engine's: allow, deny or escalate
    reason: str = ""
    since: dt.datetime | None = None
    until: dt.datetime | None = None


@dataclass(frozen=True)
class FeedRow:
    call: ToolCall
    outcome: str  # the engine's outcome; `call.decision` is the one in force (a settled escalation's)
    top_score: float | None


def feed(
    filters: FeedFilters,
    *,
    after: tuple[dt.datetime, str] | None = None,
    before: tuple[dt.datetime, str] | None = None,
    limit: int = FEED_PAGE,
) -> list[FeedRow]:
    """Calls newest first (2 queries): after a (time, id) cursor for live updates, before one for older pages.

    Served by the created_at index (or the agent's), so the cost does not grow with the table.
    """
    calls = ToolCall.objects.select_related("agent").defer(*FEED_DEFERRED).order_by("-created_at", "-id")
    if filters.agent_id is not None:
        calls = calls.filter(agent_id=filters.agent_id)
    if filters.tool:
        calls = calls.filter(tool=filters.tool)
    if filters.outcome == Outcome.ESCALATE:
        calls = calls.filter(escalated=True)
    elif filters.outcome:
        calls = calls.filter(escalated=False, decision=filters.outcome)
    if filters.since is not None:
        calls = calls.filter(created_at__gte=filters.since)
    if filters.until is not None:
        calls = calls.filter(created_at__lt=filters.until)
    if after is not None:
        calls = calls.filter(Q(created_at__gt=after[0]) | Q(created_at=after[0], id__gt=after[1]))
    if before is not None:
        calls = calls.filter(Q(created_at__lt=before[0]) | Q(created_at=before[0], id__lt=before[1]))
    if filters.reason:
        calls = _with_reason(calls, filters.reason)
    page = list(calls[:limit])
    if filters.reason and not connection.features.supports_json_field_contains:
        page = [call for call in page if filters.reason in call.reason_codes()]
    scores = (
        dict(
            Assessment.objects.filter(tool_call_id__in=[call.pk for call in page])
            .values("tool_call_id")
            .annotate(top=Max("value"))
            .values_list("tool_call_id", "top")
        )
        if page
        else {}
    )
    return [
        FeedRow(call=call, outcome=Outcome.ESCALATE if call.escalated else call.decision, top_score=scores.get(call.pk))
        for call in page
    ]


def _with_reason(calls: QuerySet[ToolCall], code: str) -> QuerySet[ToolCall]:
    """Calls given this reason code: JSON containment where the database has it (PostgreSQL's jsonb @>).

    SQLite has no containment lookup; its JSON text is narrowed with a substring match here and
    checked exactly in Python by the caller (codes are identifiers, so the pattern is literal).
    """
    if connection.features.supports_json_field_contains:
        return calls.filter(reasons__contains=[{"code": code}])
    return calls.filter(reasons__icontains=f'"{code}"')


# One tool call, whole -------------------------------------------------------------------------


@dataclass(frozen=True)
class CallDetail:
    call: ToolCall
    outcome: str
    arguments: str  # pretty JSON, sensitive values shown as markers
    output: str | None
    usage: str | None  # compact JSON
    approvals: list[Approval]
    assessments: list[Assessment]
    quarantines: list[Quarantine]
    audit_records: list[AuditRecord]


def call_detail(call_id: Any) -> CallDetail:
    """Everything about one call (6 queries); raises ToolCall.DoesNotExist."""
    call = ToolCall.objects.select_related("agent", "agent__owner").get(pk=call_id)
    return CallDetail(
        call=call,
        outcome=Outcome.ESCALATE if call.escalated else call.decision,
        arguments=_pretty(call.arguments),
        output=_pretty(call.output) if call.result_reported_at is not None else None,
        usage=json.dumps(call.usage, sort_keys=True) if call.usage else None,
        approvals=list(
            Approval.objects.filter(tool_call=call).select_related("settled_by").prefetch_related("votes__approver")
        ),
        assessments=list(
            Assessment.objects.filter(tool_call=call).select_related("guardian__agent").prefetch_related("scores")
        ),
        quarantines=list(Quarantine.objects.filter(tool_call=call)),
        audit_records=list(
            AuditRecord.objects.filter(subject_type="tool_call", subject_id=str(call.pk))
            .select_related("seal__block")
            .order_by("seq")
        ),
    )


def _pretty(document: Any) -> str:
    return json.dumps(redact(document), indent=2, ensure_ascii=False, sort_keys=True)
