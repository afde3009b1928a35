"""The behaviour baseline (bounded, JSON, pure) and the deviations the behaviour scorer reports.

Pure functions and dataclasses only: no database, no Django.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterable

import pytest

from guardian.scorers import registry
from guardian.scorers.base import History, Score, Subject, SubjectKind
from guardian.scorers.behaviour import (
    AMOUNT_WINDOW,
    COLD_START_MAX_VALUE,
    DECISION_WINDOW,
    MAX_SERIES,
    MAX_TOOLS,
    RATE_WINDOW,
    BehaviourScorer,
    Observation,
    empty,
    numeric_arguments,
    observation_of,
    observe,
)

START = 1_717_000_000.0  # an epoch second at 16:26 UTC
WORKING_HOURS = range(9, 18)


@pytest.fixture(scope="module")
def scorer() -> BehaviourScorer:
    return BehaviourScorer()


def build(observations: Iterable[Observation]) -> dict:
    baseline = empty()
    for observation in observations:
        baseline = observe(baseline, observation)
    return baseline


def routine(count: int, *, seed: int = 7, tools: tuple[str, ...] = ("send_money", "get_balance")) -> list[Observation]:
    """An agent that pays around 100 in working hours, about two calls a minute, rarely denied."""
    rng = random.Random(seed)
    observations = []
    at = START
    for index in range(count):
        at += rng.choice((20, 30, 40, 3600 if index % 50 == 49 else 30))
        tool = tools[index % len(tools)]
        numbers = {"/amount": round(rng.uniform(60, 140), 2)} if tool == "send_money" else {}
        observations.append(
            Observation(tool=tool, numbers=numbers, hour=rng.choice(WORKING_HOURS), decision="allow", at=at)
        )
    return observations


def judge(
    scorer: BehaviourScorer,
    baseline: dict | None,
    *,
    tool: str = "send_money",
    arguments: dict | None = None,
    hour: int = 10,
    decision: str = "allow",
    calls_last_minute: int | None = None,
) -> Score:
    history = History(baseline=baseline, calls_last_minute=calls_last_minute)
    subject = Subject(
        kind=SubjectKind.TOOL_CALL,
        tool=tool,
        arguments={"amount": 100} if arguments is None else arguments,
        history=history,
        at_hour=hour,
        decision=decision,
    )
    return scorer.score(subject)


def codes(score: Score) -> set[str]:
    return {reason.code for reason in score.reasons}


def test_is_registered_under_its_name() -> None:
    assert isinstance(registry.get("behaviour"), BehaviourScorer)


# The baseline -------------------------------------------------------------------------------------


def test_observe_returns_a_new_dict_and_leaves_its_argument_alone() -> None:
    before = build(routine(5))
    frozen = json.dumps(before, sort_keys=True)
    after = observe(before, Observation(tool="send_money", numbers={"/amount": 5.0}, hour=3, decision="deny", at=START))

    assert json.dumps(before, sort_keys=True) == frozen
    assert after is not before
    assert after["count"] == before["count"] + 1


def test_baseline_stays_bounded_after_ten_thousand_observations() -> None:
    rng = random.Random(3)
    observations = (
        Observation(
            tool=f"tool_{rng.randrange(500)}",
            numbers={f"/field_{rng.randrange(40)}": rng.random() * 1000 for _ in range(20)},
            hour=rng.randrange(24),
            decision=rng.choice(("allow", "escalate", "deny")),
            at=START + index * rng.choice((1, 30, 90)),
        )
        for index in range(10_000)
    )
    baseline = build(observations)

    assert baseline["count"] == 10_000
    assert len(baseline["tools"]) <= MAX_TOOLS
    series = [series for by_pointer in baseline["amounts"].values() for series in by_pointer.values()]
    assert len(series) <= MAX_SERIES
    assert all(len(one["values"]) <= AMOUNT_WINDOW for one in series)
    assert len(baseline["rate"]["recent"]) <= RATE_WINDOW
    assert len(baseline["decisions"]["recent"]) <= DECISION_WINDOW
    assert sum(baseline["hours"]) < 10_000  # halved: old habits fade
    assert len(json.dumps(baseline)) < 150_000


def test_baseline_survives_a_json_round_trip(scorer: BehaviourScorer) -> None:
    baseline = build(routine(300))
    stored = json.loads(json.dumps(baseline))

    assert stored == baseline
    outlier = {"amount": 10_000}
    assert (
        judge(scorer, stored, arguments=outlier).as_dict()["value"]
        == judge(scorer, baseline, arguments=outlier).as_dict()["value"]
    )
    assert observe(stored, routine(1)[0]) == observe(baseline, routine(1)[0])


def test_numeric_arguments_are_flattened_by_pointer() -> None:
    arguments = {"amount": 12.5, "flag": True, "items": [{"price": 3}, {"price": "4"}], "a/b": 1, "note": "x"}

    assert numeric_arguments(arguments) == {"/a~1b": 1.0, "/amount": 12.5, "/items/0/price": 3.0}


def test_observation_of_takes_the_hour_in_utc() -> None:
    at = dt.datetime(2024, 5, 14, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    observation = observation_of(tool="send_money", arguments={"amount": 5}, at=at, decision="deny")

    assert observation.hour == 21
    assert observation.numbers == {"/amount": 5.0}
    assert observation.at == at.timestamp()


# Deviations ---------------------------------------------------------------------------------------


def test_amount_a_hundred_times_the_median_is_flagged_with_its_pointer(scorer: BehaviourScorer) -> None:
    baseline = build(routine(400))
    score = judge(scorer, baseline, arguments={"amount": 10_000})

    (reason,) = [reason for reason in score.reasons if reason.code == "unusual_amount"]
    assert reason.where == "/arguments/amount"
    assert "10000" in reason.message
    assert "median" in reason.message
    assert score.value >= 0.5


def test_usual_amount_is_not_flagged(scorer: BehaviourScorer) -> None:
    score = judge(scorer, build(routine(400)), arguments={"amount": 120})

    assert score.reasons == ()
    assert score.value == 0.0


def test_one_outlier_in_history_does_not_move_the_baseline(scorer: BehaviourScorer) -> None:
    observations = routine(400)
    observations[200] = Observation(tool="send_money", numbers={"/amount": 1_000_000.0}, hour=10, at=START + 7000)
    baseline = build(observations)

    assert "unusual_amount" not in codes(judge(scorer, baseline, arguments={"amount": 130}))
    assert "unusual_amount" in codes(judge(scorer, baseline, arguments={"amount": 10_000}))


def test_new_tool_is_flagged_only_once_the_baseline_is_mature(scorer: BehaviourScorer) -> None:
    young = judge(scorer, build(routine(8)), tool="delete_account", arguments={})
    mature = judge(scorer, build(routine(400)), tool="delete_account", arguments={})

    assert "unusual_tool" not in codes(young)
    (reason,) = [reason for reason in mature.reasons if reason.code == "unusual_tool"]
    assert "delete_account" in reason.message
    assert "unusual_tool" not in codes(judge(scorer, build(routine(400)), tool="get_balance", arguments={}))


def test_cold_start_does_not_cry_wolf(scorer: BehaviourScorer) -> None:
    young = build(routine(15, tools=("send_money",)))
    score = judge(scorer, young, arguments={"amount": 100_000}, hour=3, calls_last_minute=50)

    assert "cold_start" in codes(score)
    assert "unusual_amount" in codes(score)  # seen, but scaled by confidence
    assert score.value <= COLD_START_MAX_VALUE


def test_no_baseline_is_cold_start_with_value_zero(scorer: BehaviourScorer) -> None:
    score = judge(scorer, None)

    assert score.value == 0.0
    assert codes(score) == {"cold_start"}


def test_hour_the_agent_never_acts_is_flagged(scorer: BehaviourScorer) -> None:
    baseline = build(routine(400))
    night = judge(scorer, baseline, hour=3)
    day = judge(scorer, baseline, hour=11)

    (reason,) = [reason for reason in night.reasons if reason.code == "unusual_hour"]
    assert "03h" in reason.message
    assert 0 < night.value < 0.5  # an odd hour alone is not enough
    assert "unusual_hour" not in codes(day)


def test_burst_far_above_the_usual_rate_is_flagged(scorer: BehaviourScorer) -> None:
    baseline = build(routine(400))
    burst = judge(scorer, baseline, calls_last_minute=60)
    usual = judge(scorer, baseline, calls_last_minute=3)

    (reason,) = [reason for reason in burst.reasons if reason.code == "unusual_rate"]
    assert "60 calls" in reason.message
    assert burst.value >= 0.5
    assert "unusual_rate" not in codes(usual)


def test_deny_rate_far_above_the_usual_is_flagged(scorer: BehaviourScorer) -> None:
    observations = routine(300)
    for index in range(DECISION_WINDOW):
        decision = "deny" if index % 2 else "allow"
        at = observations[-1].at + 30
        observations.append(
            Observation(tool="send_money", numbers={"/amount": 100.0}, hour=10, decision=decision, at=at)
        )
    baseline = build(observations)
    score = judge(scorer, baseline, decision="deny")

    (reason,) = [reason for reason in score.reasons if reason.code == "unusual_deny_rate"]
    assert "denials" in reason.message
    assert "unusual_deny_rate" not in codes(judge(scorer, build(routine(300)), decision="deny"))


def test_tool_outputs_are_not_judged(scorer: BehaviourScorer) -> None:
    subject = Subject(kind=SubjectKind.TOOL_OUTPUT, tool="send_money", text="ok", history=History(baseline=empty()))
    score = scorer.score(subject)

    assert score.value == 0.0
    assert score.reasons == ()
    assert score.detail == {"applicable": False}
