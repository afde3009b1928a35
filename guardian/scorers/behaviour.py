"""Per-agent behaviour baselines, and the scorer that flags calls far outside them.

A baseline is what an agent usually does: which tools it calls, how large its numeric arguments
are, at which hours it acts, how fast it calls, and how often the policy engine denies it. It is
a plain JSON-serialisable dict (so it can live in a JSONField), built incrementally by the pure
function `observe(baseline, observation)`, which returns a new dict and never grows past a fixed
size however long the agent runs:

- `tools`: calls per tool, at most `MAX_TOOLS` tools (the least used is dropped for a new one);
- `hours`: a 24-bin histogram of call hours (UTC);
- `amounts`: per (tool, argument pointer) the last `AMOUNT_WINDOW` values, at most `MAX_SERIES`
  series (the least recently updated is dropped), for a robust median/MAD;
- `rate`: calls in the current minute and the counts of the last `RATE_WINDOW` minutes in which
  the agent was active (idle minutes are not counted: a burst is judged against the agent's
  pace when it works, not against its idle nights);
- `decisions`: counts per decision, a slow EWMA of the deny rate (the usual rate) and the last
  `DECISION_WINDOW` decisions (the recent rate).

Tool, hour and decision counts are halved whenever their total reaches `HALVING_AT`: proportions
are kept while old habits fade, so an agent whose work changes is not judged forever by its
first months. `count` (all observations ever) is never halved; it is what maturity means.

The scorer reads the baseline as it stood before the call (`subject.history.baseline`), judges
the call against it, and leaves observing to the caller. Deviations are robust z-scores
(median/MAD, on a log scale for magnitudes), each a `ScoreReason`, combined by noisy-OR. A young
baseline must not cry wolf: every weight is scaled by the confidence n/(n+k), a never-seen tool
counts only once the baseline is mature, and below `COLD_START_N` observations the value is
capped and a `cold_start` reason says why.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from statistics import median
from typing import Any, TypeAlias

from guardian.scorers.base import BaseScorer, ScoreReason, Subject, SubjectKind
from guardian.scorers.registry import register

BASELINE_VERSION = 1

# --- Size bounds -----------------------------------------------------------------------------------
MAX_TOOLS = 200
MAX_SERIES = 64  # (tool, pointer) series of argument magnitudes
AMOUNT_WINDOW = 128  # values kept per series
MAX_NUMBERS_PER_CALL = 16  # numeric arguments of one call that are tracked
MAX_ARGUMENT_DEPTH = 6
RATE_WINDOW = 64  # active minutes kept
DECISION_WINDOW = 20  # recent decisions kept
HALVING_AT = 10_000  # tool, hour and decision counts are halved when their total reaches this
VALUE_DIGITS = 6  # significant digits kept per stored value

DECISIONS = ("allow", "escalate", "deny")
DENY_EWMA_ALPHA = 0.01  # ~100 calls of memory: the agent's usual deny rate

# --- Scoring -----------------------------------------------------------------------------------------
COLD_START_N = 20  # below this many observations the baseline is young
CONFIDENCE_K = 20  # confidence = n / (n + CONFIDENCE_K): 0.5 at 20 observations, 0.91 at 200
COLD_START_MAX_VALUE = 0.3  # a young baseline never takes the value past this

Z_START = 3.5  # robust z below which nothing is reported
Z_FULL = 10.0  # robust z at which a deviation weighs its full weight
LOG_MAD_FLOOR = 0.1  # log-scale spread assumed at least (values that never varied): ~10%
RATE_LOG_MAD_FLOOR = 0.25
MIN_SERIES_VALUES = 8  # past values needed before a magnitude is judged
MIN_RATE_MINUTES = 5  # active minutes needed before a rate is judged
MIN_BURST_CALLS = 5  # fewer calls in a minute are never a burst
MIN_RECENT_DECISIONS = 10
DENY_RATE_FLOOR = 0.02  # the usual deny rate assumed at least (an agent never denied yet)
MIN_RECENT_DENY_SHARE = 0.25
DENY_Z_START = 3.0
DENY_Z_FULL = 8.0
RARE_HOUR_SHARE = 0.005

AMOUNT_WEIGHT = 0.8
TOOL_WEIGHT = 0.6
HOUR_WEIGHT = 0.35  # alone never enough: people work late sometimes
RATE_WEIGHT = 0.7
DENY_RATE_WEIGHT = 0.6


# --- Observations ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Observation:
    """One call as the baseline learns it.

    `numbers` holds the call's numeric argument values by JSON Pointer relative to the arguments
    (`/amount`, `/items/0/price`); `hour` is 0-23 UTC; `decision` is allow, escalate or deny;
    `at` is the call's time in epoch seconds.
    """

    tool: str
    numbers: Mapping[str, float] = field(default_factory=dict)
    hour: int = 0
    decision: str = "allow"
    at: float = 0.0


def observation_of(
    *, tool: str, arguments: Mapping[str, Any] | None, at: float | dt.datetime, decision: str = "allow"
) -> Observation:
    """The observation of one call: its numeric arguments flattened, its UTC hour taken from `at`.

    `at` is epoch seconds or a datetime (a naive one is taken as UTC).
    """
    if isinstance(at, dt.datetime):
        moment = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
        epoch = moment.timestamp()
    else:
        epoch = float(at)
    hour = int(epoch // 3600) % 24
    return Observation(tool=tool, numbers=numeric_arguments(arguments), hour=hour, decision=str(decision), at=epoch)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def numeric_arguments(arguments: Mapping[str, Any] | None) -> dict[str, float]:
    """Finite numeric values (not booleans) by JSON Pointer, at most MAX_NUMBERS_PER_CALL, sorted."""
    found: dict[str, float] = {}

    def walk(node: Any, pointer: str, depth: int) -> None:
        if isinstance(node, bool) or depth > MAX_ARGUMENT_DEPTH:
            return
        if isinstance(node, int | float):
            if math.isfinite(node):
                found[pointer] = float(node)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{pointer}/{_escape(str(key))}", depth + 1)
        elif isinstance(node, list | tuple):
            for index, value in enumerate(node):
                walk(value, f"{pointer}/{index}", depth + 1)

    if arguments:
        walk(arguments, "", 0)
    return dict(sorted(found.items())[:MAX_NUMBERS_PER_CALL])


_INDEX = re.compile(r"/\d+(?=/|$)")


def series_pointer(pointer: str) -> str:
    """The series a value belongs to: list indices collapse (`/items/3/price` -> `/items/*/price`)."""
    return _INDEX.sub("/*", pointer)


# --- The baseline ----------------------------------------------------------------------------------


# A baseline as stored: plain dicts, lists, strings and numbers (see the module docstring).
Baseline: TypeAlias = dict[str, Any]


def empty() -> Baseline:
    """A baseline that has seen nothing."""
    return {
        "version": BASELINE_VERSION,
        "count": 0,
        "first_at": None,
        "last_at": None,
        "tools": {},
        "hours": [0] * 24,
        "amounts": {},
        "rate": {"minute": None, "current": 0, "recent": []},
        "decisions": {"counts": dict.fromkeys(DECISIONS, 0), "deny_ewma": 0.0, "recent": ""},
    }


def _copy(baseline: Mapping[str, Any] | None) -> Baseline:
    """A fresh, well-formed copy: missing or malformed parts (an older version) start empty."""
    fresh = empty()
    if not baseline:
        return fresh
    fresh["count"] = int(baseline.get("count", 0) or 0)
    fresh["first_at"] = baseline.get("first_at")
    fresh["last_at"] = baseline.get("last_at")
    tools = baseline.get("tools")
    if isinstance(tools, Mapping):
        fresh["tools"] = {str(name): int(count) for name, count in tools.items()}
    hours = baseline.get("hours")
    if isinstance(hours, list) and len(hours) == 24:
        fresh["hours"] = [int(count) for count in hours]
    amounts = baseline.get("amounts")
    if isinstance(amounts, Mapping):
        fresh["amounts"] = {
            str(tool): {
                str(pointer): {
                    "values": [float(value) for value in series.get("values", [])][-AMOUNT_WINDOW:],
                    "last": int(series.get("last", 0)),
                }
                for pointer, series in by_pointer.items()
            }
            for tool, by_pointer in amounts.items()
            if isinstance(by_pointer, Mapping)
        }
    rate = baseline.get("rate")
    if isinstance(rate, Mapping):
        fresh["rate"] = {
            "minute": rate.get("minute"),
            "current": int(rate.get("current", 0) or 0),
            "recent": [int(count) for count in rate.get("recent", [])][-RATE_WINDOW:],
        }
    decisions = baseline.get("decisions")
    if isinstance(decisions, Mapping):
        counts = decisions.get("counts", {})
        fresh["decisions"] = {
            "counts": {name: int(counts.get(name, 0)) for name in DECISIONS},
            "deny_ewma": float(decisions.get("deny_ewma", 0.0)),
            "recent": str(decisions.get("recent", ""))[-DECISION_WINDOW:],
        }
    return fresh


def observe(baseline: Mapping[str, Any] | None, observation: Observation) -> Baseline:
    """The baseline after one more call: a new dict, the argument untouched, size bounded."""
    updated = _copy(baseline)
    updated["count"] += 1
    count = updated["count"]
    if updated["first_at"] is None:
        updated["first_at"] = observation.at
    updated["last_at"] = max(observation.at, updated["last_at"] or observation.at)
    _observe_tool(updated, observation.tool)
    _observe_hour(updated, observation.hour)
    _observe_amounts(updated, observation, count)
    _observe_rate(updated["rate"], observation.at)
    _observe_decision(updated["decisions"], observation.decision)
    return updated


def _halve(counts: dict[str, int]) -> dict[str, int]:
    return {key: value // 2 for key, value in counts.items() if value // 2 > 0}


def _observe_tool(baseline: dict[str, Any], tool: str) -> None:
    """Count the tool; a new one beyond MAX_TOOLS replaces the least used (and its series)."""
    tools: dict[str, int] = baseline["tools"]
    if tool not in tools and len(tools) >= MAX_TOOLS:
        least = min(tools, key=lambda name: (tools[name], name))
        del tools[least]
        baseline["amounts"].pop(least, None)
    tools[tool] = tools.get(tool, 0) + 1
    if sum(tools.values()) >= HALVING_AT:
        baseline["tools"] = _halve(tools)
        for gone in set(baseline["amounts"]) - set(baseline["tools"]):
            del baseline["amounts"][gone]


def _observe_hour(baseline: dict[str, Any], hour: int) -> None:
    hours: list[int] = baseline["hours"]
    hours[hour % 24] += 1
    if sum(hours) >= HALVING_AT:
        baseline["hours"] = [count // 2 for count in hours]


def _round(value: float) -> float:
    return float(f"{value:.{VALUE_DIGITS}g}")


def _observe_amounts(baseline: dict[str, Any], observation: Observation, count: int) -> None:
    """Append the call's numbers to their (tool, pointer) series; `count` stamps them as fresh."""
    if observation.tool not in baseline["tools"]:
        return
    amounts: dict[str, dict[str, dict[str, Any]]] = baseline["amounts"]
    by_pointer = amounts.setdefault(observation.tool, {})
    for pointer, value in list(observation.numbers.items())[:MAX_NUMBERS_PER_CALL]:
        if not math.isfinite(value):
            continue
        series = by_pointer.setdefault(series_pointer(pointer), {"values": [], "last": count})
        series["values"] = [*series["values"], _round(value)][-AMOUNT_WINDOW:]
        series["last"] = count
    _evict_series(amounts)


def _evict_series(amounts: dict[str, dict[str, dict[str, Any]]]) -> None:
    """Keep at most MAX_SERIES series, dropping the least recently updated."""
    total = sum(len(by_pointer) for by_pointer in amounts.values())
    while total > MAX_SERIES:
        tool, pointer = min(
            ((tool, pointer) for tool, by_pointer in amounts.items() for pointer in by_pointer),
            key=lambda key: amounts[key[0]][key[1]]["last"],
        )
        del amounts[tool][pointer]
        if not amounts[tool]:
            del amounts[tool]
        total -= 1


def _observe_rate(rate: dict[str, Any], at: float) -> None:
    """Count the call in its minute; a later minute closes the current one into `recent`."""
    minute = int(at // 60)
    if rate["minute"] is None:
        rate["minute"], rate["current"] = minute, 1
    elif minute == rate["minute"]:
        rate["current"] += 1
    elif minute > rate["minute"]:
        rate["recent"] = [*rate["recent"], rate["current"]][-RATE_WINDOW:]
        rate["minute"], rate["current"] = minute, 1
    # A call older than the current minute (delivered late) does not rewrite the past.


def _observe_decision(decisions: dict[str, Any], decision: str) -> None:
    """Counts, the slow deny EWMA and the recent window (one letter per decision: a, e, d).

    A decision outside allow/escalate/deny (a value from a newer engine) counts as allow.
    """
    decision = decision if decision in DECISIONS else "allow"
    counts: dict[str, int] = decisions["counts"]
    counts[decision] += 1
    if sum(counts.values()) >= HALVING_AT:
        decisions["counts"] = {name: counts[name] // 2 for name in DECISIONS}
    denied = 1.0 if decision == "deny" else 0.0
    decisions["deny_ewma"] = (1 - DENY_EWMA_ALPHA) * float(decisions["deny_ewma"]) + DENY_EWMA_ALPHA * denied
    decisions["recent"] = (decisions["recent"] + decision[0])[-DECISION_WINDOW:]


def confidence(count: int) -> float:
    """How far a baseline of `count` observations is trusted: n / (n + CONFIDENCE_K)."""
    return count / (count + CONFIDENCE_K) if count > 0 else 0.0


# --- Robust statistics -----------------------------------------------------------------------------


def signed_log(value: float) -> float:
    """log1p on the magnitude, sign kept: amounts deviate by factors, not by differences."""
    return math.copysign(math.log1p(abs(value)), value)


def robust_z(value: float, history: list[float], floor: float) -> tuple[float, float]:
    """(|value - median| / max(1.4826 * MAD, floor), median) of `history`."""
    centre = median(history)
    mad = median(abs(past - centre) for past in history)
    return abs(value - centre) / max(1.4826 * mad, floor), centre


def _times(ratio: float) -> str:
    ratio = abs(ratio)
    return f"{ratio:,.0f} times" if ratio >= 10 else f"{ratio:.2g} times"


def _ramp(z: float, start: float, full: float) -> float:
    """0 at `start`, 1 at `full` and beyond."""
    return min(1.0, max(0.0, (z - start) / (full - start)))


# --- The scorer ------------------------------------------------------------------------------------


def _noisy_or(weights: list[float]) -> float:
    keep = 1.0
    for weight in weights:
        keep *= 1.0 - min(1.0, max(0.0, weight))
    return 1.0 - keep


@register
class BehaviourScorer(BaseScorer):
    """How far a tool call lies outside its agent's behaviour baseline."""

    name = "behaviour"
    kinds = frozenset({SubjectKind.TOOL_CALL})
    fast = True
    threshold = 0.5

    def evaluate(self, subject: Subject) -> tuple[float, list[ScoreReason], dict[str, Any]]:
        if subject.kind != SubjectKind.TOOL_CALL:
            return 0.0, [], {"applicable": False}
        history = subject.history
        if history is None or not history.baseline:
            reason = ScoreReason(
                code="cold_start", message="No behaviour baseline for this agent yet: nothing to compare to."
            )
            return 0.0, [reason], {"observations": 0, "confidence": 0.0}
        baseline = _copy(history.baseline)
        count = baseline["count"]
        trust = confidence(count)
        reasons = [
            *self._unusual_amounts(subject, baseline),
            *self._unusual_tool(subject, baseline),
            *self._unusual_hour(subject, baseline),
            *self._unusual_rate(history.calls_last_minute, baseline),
            *self._unusual_deny_rate(subject.decision, baseline),
        ]
        reasons = [replace(reason, weight=reason.weight * trust) for reason in reasons]
        reasons.sort(key=lambda reason: -reason.weight)
        value = _noisy_or([reason.weight for reason in reasons])
        if count < COLD_START_N:
            value = min(value, COLD_START_MAX_VALUE)
            reasons.append(
                ScoreReason(
                    code="cold_start",
                    message=(
                        f"Only {count} observations of this agent (fewer than {COLD_START_N}): deviations are "
                        f"scaled by a confidence of {trust:.2f} and the value is capped at {COLD_START_MAX_VALUE}."
                    ),
                )
            )
        return value, reasons, {"observations": count, "confidence": round(trust, 4)}

    def _unusual_amounts(self, subject: Subject, baseline: dict[str, Any]) -> list[ScoreReason]:
        """Numeric arguments far from their series' median, on a log scale (robust z)."""
        by_pointer = baseline["amounts"].get(subject.tool or "", {})
        reasons = []
        for pointer, value in numeric_arguments(subject.arguments).items():
            series = by_pointer.get(series_pointer(pointer))
            if not series or len(series["values"]) < MIN_SERIES_VALUES:
                continue
            past = [float(earlier) for earlier in series["values"]]
            z, _ = robust_z(signed_log(value), [signed_log(earlier) for earlier in past], LOG_MAD_FLOOR)
            weight = AMOUNT_WEIGHT * _ramp(z, Z_START, Z_FULL)
            if weight <= 0:
                continue
            usual = median(past)
            ratio = f", {_times(value / usual)} the median" if usual else ""
            reasons.append(
                ScoreReason(
                    code="unusual_amount",
                    message=(
                        f"Argument {pointer} of {subject.tool} is {value:g}; its median over the last {len(past)} "
                        f"calls is {usual:g}{ratio} (robust z {z:.1f})."
                    ),
                    where=f"/arguments{pointer}",
                    weight=weight,
                )
            )
        return reasons

    def _unusual_tool(self, subject: Subject, baseline: dict[str, Any]) -> list[ScoreReason]:
        """A tool the agent never called, judged by how rarely it takes up new tools.

        The share of calls that introduced a tool (distinct tools / calls) estimates how likely
        a new one is; its surprise (-log10) sets the weight. Only a mature baseline judges.
        """
        tools: dict[str, int] = baseline["tools"]
        count = baseline["count"]
        tool = subject.tool or ""
        if count < COLD_START_N or not tool or tool in tools:
            return []
        new_share = max(len(tools), 1) / count
        surprise = -math.log10(min(1.0, new_share))
        weight = TOOL_WEIGHT * _ramp(surprise, 0.5, 2.0)
        if weight <= 0:
            return []
        return [
            ScoreReason(
                code="unusual_tool",
                message=(
                    f"{tool} was never called by this agent in {count} calls over {len(tools)} tools "
                    f"(a new tool about once in {1 / new_share:.0f} calls)."
                ),
                where="tool",
                weight=weight,
            )
        ]

    def _unusual_hour(self, subject: Subject, baseline: dict[str, Any]) -> list[ScoreReason]:
        """An hour with no (or almost no) calls; empty neighbouring hours make it stranger."""
        hours: list[int] = baseline["hours"]
        total = sum(hours)
        hour = subject.at_hour
        if hour is None or baseline["count"] < COLD_START_N or total == 0:
            return []
        hour %= 24
        here, around = hours[hour], hours[(hour - 1) % 24] + hours[(hour + 1) % 24]
        if here == 0 and around == 0:
            weight, how = HOUR_WEIGHT, "never acts at this hour nor the hours next to it"
        elif here == 0:
            weight, how = HOUR_WEIGHT * 0.5, "never acts at this hour"
        elif here / total < RARE_HOUR_SHARE:
            weight, how = HOUR_WEIGHT * 0.3, f"rarely acts at this hour ({here / total:.1%} of calls)"
        else:
            return []
        return [ScoreReason(code="unusual_hour", message=f"A call at {hour:02d}h UTC: the agent {how}.", weight=weight)]

    def _unusual_rate(self, calls_last_minute: int | None, baseline: dict[str, Any]) -> list[ScoreReason]:
        """A minute far busier than the agent's active minutes usually are (robust z on log counts)."""
        recent: list[int] = baseline["rate"]["recent"]
        if calls_last_minute is None or calls_last_minute < MIN_BURST_CALLS or len(recent) < MIN_RATE_MINUTES:
            return []
        z, _ = robust_z(math.log1p(calls_last_minute), [math.log1p(past) for past in recent], RATE_LOG_MAD_FLOOR)
        usual = median(recent)
        if calls_last_minute <= usual:
            return []
        weight = RATE_WEIGHT * _ramp(z, Z_START, Z_FULL)
        if weight <= 0:
            return []
        message = (
            f"{calls_last_minute} calls in the last minute; the agent usually makes {usual:g} per active minute "
            f"(median of {len(recent)} minutes, robust z {z:.1f})."
        )
        return [ScoreReason(code="unusual_rate", message=message, weight=weight)]

    def _unusual_deny_rate(self, decision: str | None, baseline: dict[str, Any]) -> list[ScoreReason]:
        """Recent denials far above the agent's usual rate (a binomial z against the slow EWMA)."""
        decisions = baseline["decisions"]
        recent = decisions["recent"] + (decision[0] if decision in DECISIONS else "")
        recent = recent[-DECISION_WINDOW:]
        if baseline["count"] < COLD_START_N or len(recent) < MIN_RECENT_DECISIONS:
            return []
        denied = recent.count("d")
        usual = max(float(decisions["deny_ewma"]), DENY_RATE_FLOOR)
        share = denied / len(recent)
        if share < MIN_RECENT_DENY_SHARE:
            return []
        z = (denied - len(recent) * usual) / math.sqrt(len(recent) * usual * (1 - usual))
        weight = DENY_RATE_WEIGHT * _ramp(z, DENY_Z_START, DENY_Z_FULL)
        if weight <= 0:
            return []
        message = (
            f"{denied} of the last {len(recent)} decisions were denials ({share:.0%}); "
            f"the agent's usual deny rate is {usual:.1%}."
        )
        return [ScoreReason(code="unusual_deny_rate", message=message, weight=weight)]
