"""The evaluation metrics against hand-computed values, the row reader, the subject mapping and the split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardian.evaluation import (
    SUMMARY_KEYS,
    DatasetError,
    EvalRow,
    EvaluationError,
    ScorerSet,
    build_report,
    confusion,
    evenly_spaced,
    measure,
    percentile,
    read_rows,
    recall_at_fpr,
    resolve_scorers,
    roc_auc,
    score_rows,
    subject_for_row,
)
from guardian.scorers.base import BaseScorer, SubjectKind
from guardian.training.split import TRAIN, VALIDATION, build_split, injecagent_case, split_of

# -- ROC AUC ------------------------------------------------------------------------------------------


def test_auc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_zero():
    labels = [True, True, False, False]
    assert roc_auc(labels, [0.9, 0.8, 0.7, 0.1]) == 1.0
    assert roc_auc(labels, [0.1, 0.2, 0.7, 0.8]) == 0.0


def test_auc_counts_a_tie_between_classes_as_half():
    # Pairs (positive, negative): (0.5, 0.5) tie = 0.5, (0.5, 0.1) = 1, (0.9, 0.5) = 1, (0.9, 0.1) = 1.
    assert roc_auc([True, False, True, False], [0.5, 0.5, 0.9, 0.1]) == pytest.approx(3.5 / 4)


def test_auc_of_constant_scores_is_one_half():
    assert roc_auc([True, False, True, False, False], [0.3] * 5) == pytest.approx(0.5)


def test_auc_with_ties_inside_one_class():
    # Positives 0.8, 0.8, 0.4; negatives 0.4, 0.2: pairs 1, 1, 1, 1, 0.5, 1 -> 5.5 / 6.
    assert roc_auc([True, True, True, False, False], [0.8, 0.8, 0.4, 0.4, 0.2]) == pytest.approx(5.5 / 6)


def test_auc_is_none_when_a_class_is_missing():
    assert roc_auc([True, True], [0.2, 0.9]) is None
    assert roc_auc([False], [0.2]) is None
    assert roc_auc([], []) is None


# -- recall at a false-positive rate -------------------------------------------------------------------

# Positives 0.9, 0.7, 0.4; negatives 0.7, 0.5, 0.2, 0.1 (the 0.7 is a tie across the classes).
LABELS = [True, True, True, False, False, False, False]
VALUES = [0.9, 0.7, 0.4, 0.7, 0.5, 0.2, 0.1]


def test_recall_at_zero_fpr_cannot_split_a_tie():
    # Flagging the 0.7 pair costs a false positive (FPR 0.25), so at FPR 0 only the 0.9 is caught.
    assert recall_at_fpr(LABELS, VALUES, 0.0) == pytest.approx(1 / 3)


def test_recall_at_fpr_takes_the_best_threshold_within_the_budget():
    assert recall_at_fpr(LABELS, VALUES, 0.25) == pytest.approx(2 / 3)
    assert recall_at_fpr(LABELS, VALUES, 0.49) == pytest.approx(2 / 3)
    assert recall_at_fpr(LABELS, VALUES, 0.5) == pytest.approx(1.0)


def test_recall_at_fpr_when_every_score_ties():
    assert recall_at_fpr([True, False, True, False], [0.5] * 4, 0.05) == 0.0
    assert recall_at_fpr([True, False, True, False], [0.5] * 4, 1.0) == 1.0


def test_recall_at_fpr_is_none_when_a_class_is_missing():
    assert recall_at_fpr([True, True], [0.1, 0.2], 0.05) is None
    assert recall_at_fpr([False, False], [0.1, 0.2], 0.05) is None


# -- threshold metrics, percentiles, the bundle ---------------------------------------------------------


def test_confusion_counts_and_the_rates():
    counts = confusion([True, True, True, False, False], [True, True, False, True, False])
    assert (counts.true_pos, counts.false_pos, counts.false_neg, counts.true_neg) == (2, 1, 1, 1)
    assert counts.precision == pytest.approx(2 / 3)
    assert counts.recall == pytest.approx(2 / 3)
    assert counts.fpr == pytest.approx(0.5)
    assert counts.f1 == pytest.approx(2 / 3)


def test_precision_is_undefined_when_nothing_is_flagged():
    counts = confusion([True, False], [False, False])
    assert counts.precision is None
    assert counts.recall == 0.0
    assert counts.f1 == 0.0
    assert counts.fpr == 0.0


def test_percentile_is_nearest_rank():
    samples = [float(value) for value in range(100, 0, -1)]
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.0
    assert percentile([], 99) is None


def test_measure_with_only_benign_rows_gives_nulls_not_a_crash():
    metrics = measure([False, False, False], [0.1, 0.7, 0.2], [False, True, False], [0.1, 0.2, 0.3])
    assert (metrics.n_pos, metrics.n_neg) == (0, 3)
    assert metrics.recall is None
    assert metrics.f1 is None
    assert metrics.auc is None
    assert metrics.recall_at_1fpr is None
    assert metrics.recall_at_5fpr is None
    assert metrics.precision == 0.0
    assert metrics.fpr == pytest.approx(1 / 3)
    summary = metrics.summary()
    assert tuple(summary) == SUMMARY_KEYS
    assert summary["auc"] is None
    assert summary["p99_ms"] == 0.3


def test_measure_with_only_anomalous_rows_has_no_fpr():
    metrics = measure([True, True], [0.9, 0.2], [True, False], [])
    assert metrics.fpr is None
    assert metrics.recall == 0.5
    assert metrics.p50_ms is None


# -- reading rows -------------------------------------------------------------------------------------


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(**fields):
    base = {"id": "x:1", "source": "test", "kind": "tool_output", "label": "benign", "text": "hello"}
    return json.dumps({**base, **fields})


def test_read_rows_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    path = _write(tmp_path / "rows.jsonl", [_row(), "", _row(id="x:2", label="anomalous")])
    rows = read_rows(path)
    assert [row.line for row in rows] == [1, 3]
    assert rows[1].is_anomalous
    assert rows[0].stem == "rows"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_row(kind="essay"), "'kind' must be one of"),
        (_row(label="maybe"), "'label' must be"),
        (_row(arguments=[1, 2]), "'arguments' must be an object"),
        (_row(text=5), "'text' must be a string"),
    ],
)
def test_a_bad_row_names_the_file_and_the_line(tmp_path, bad, expected):
    path = _write(tmp_path / "bad.jsonl", [_row(), bad])
    with pytest.raises(DatasetError) as caught:
        read_rows(path)
    assert f"{path}, line 2" in str(caught.value)
    assert expected in str(caught.value)


def test_a_missing_file_is_a_dataset_error(tmp_path):
    with pytest.raises(DatasetError, match="cannot be read"):
        read_rows(tmp_path / "absent.jsonl")


def test_evenly_spaced_keeps_the_mix():
    rows = [EvalRow(file="f", line=i, id=str(i), source="s", kind="tool_call", label="benign") for i in range(10)]
    assert [row.line for row in evenly_spaced(rows, 5)] == [0, 2, 4, 6, 8]
    assert evenly_spaced(rows, None) == rows
    assert len(evenly_spaced(rows, 50)) == 10


# -- subjects -------------------------------------------------------------------------------------


def test_rows_map_to_the_subjects_a_guardian_sees():
    common = {"file": "f.jsonl", "line": 1, "id": "r", "source": "s", "label": "benign", "agent_role": "bank assistant"}
    call = subject_for_row(
        EvalRow(kind="tool_call", tool="send_money", arguments={"to": "x"}, text="pay the rent", **common)
    )
    assert call is not None
    assert call.kind is SubjectKind.TOOL_CALL
    assert (call.tool, dict(call.arguments or {}), call.text, call.agent.role) == (
        "send_money",
        {"to": "x"},
        "pay the rent",
        "bank assistant",
    )
    output = subject_for_row(EvalRow(kind="tool_output", tool="read_file", arguments={}, text="data", **common))
    assert output is not None
    assert (output.kind, output.text, output.tool) == (SubjectKind.TOOL_OUTPUT, "data", "read_file")
    message = subject_for_row(EvalRow(kind="agent_output", text="Final Answer: done", **common))
    assert message is not None
    assert (message.kind, message.text, message.tool) == (SubjectKind.AGENT_OUTPUT, "Final Answer: done", None)
    assert subject_for_row(EvalRow(kind="trajectory", text="[user] hi", **common)) is None


def test_an_unknown_scorer_is_an_error():
    with pytest.raises(EvaluationError, match="Unknown scorer"):
        resolve_scorers(["classifier", "no-such-scorer"])


# -- the split -------------------------------------------------------------------------------------


def _split_row(row_id: str, source: str, kind: str, category: str | None = None, tool: str | None = None) -> EvalRow:
    return EvalRow(file="f", line=1, id=row_id, source=source, kind=kind, label="benign", category=category, tool=tool)


def test_injecagent_ids_give_user_and_attacker_cases():
    assert injecagent_case("injecagent:dh_base:0035") == ("dh", 1, 2)
    assert injecagent_case("injecagent_runs:enhanced:gpt-4o:ds:0536:call") == ("ds", 536 % 17, 536 // 17)
    assert injecagent_case("injecagent:user_case:12:output") == (None, 12, None)
    assert injecagent_case("agentdojo:out:travel:none:1") == (None, None, None)


def test_the_split_holds_out_suites_attacks_tools_user_cases_and_attack_types():
    typed = _split_row("injecagent:ds_base:0017", "injecagent", "tool_output", "data_stealing/Physical Data")
    definition = build_split([typed])
    assert definition["injecagent"]["held_attacker_cases"]["ds"] == [1]
    cases = {
        (
            "agentdojo:call:banking:user_task_0:none:1",
            "agentdojo",
            "tool_call",
            "benign/banking",
            "send_money",
        ): VALIDATION,
        ("agentdojo:call:travel:user_task_0:none:1", "agentdojo", "tool_call", "benign/travel", "send_email"): TRAIN,
        ("agentdojo:out:travel:tool_knowledge:1", "agentdojo", "tool_output", "tool_knowledge", "x"): VALIDATION,
        ("agentdojo:out:workspace:none:1", "agentdojo", "tool_output", "benign/workspace", "create_file"): VALIDATION,
        ("agentdojo:out:workspace:none:2", "agentdojo", "tool_output", "benign/workspace", "send_email"): TRAIN,
        ("injecagent:dh_base:0001", "injecagent", "tool_output", "direct_harm/Physical Harm", None): VALIDATION,
        ("injecagent:dh_base:0000", "injecagent", "tool_output", "direct_harm/Physical Harm", None): TRAIN,
        ("injecagent:dh_base:0034", "injecagent", "tool_output", "direct_harm/Financial Harm", None): VALIDATION,
        # An agent output does not name its attack type: its attacker case (ds, 1) does.
        (
            "injecagent_runs:base:gpt-4o:ds:0017:output",
            "injecagent_runs",
            "agent_output",
            "followed_injection/ds",
            None,
        ): (VALIDATION),
        (
            "injecagent_runs:base:gpt-4o:ds:0000:output",
            "injecagent_runs",
            "agent_output",
            "followed_injection/ds",
            None,
        ): (TRAIN),
    }
    for (row_id, source, kind, category, tool), expected in cases.items():
        assert split_of(_split_row(row_id, source, kind, category, tool), definition) == expected, row_id


# -- scoring and the report with stand-in scorers -------------------------------------------------------


class _Fixed(BaseScorer):
    """A stand-in scorer: the value is looked up by the subject's text."""

    def __init__(self, name: str, values: dict[str, float], fast: bool = True, tokens: int = 0) -> None:
        self.name = name  # type: ignore[misc]
        self.fast = fast  # type: ignore[misc]
        self.kinds = frozenset({SubjectKind.TOOL_OUTPUT})  # type: ignore[misc]
        self.values = values
        self.tokens = tokens

    def evaluate(self, subject):
        return self.values[subject.text], [], {"prompt_tokens": self.tokens} if self.tokens else {}


def test_the_ensemble_with_the_slm_adds_the_slm_to_the_fast_scorers():
    rows = [
        EvalRow(file="d/set.jsonl", line=i, id=str(i), source="s", kind="tool_output", label=label, text=text)
        for i, (label, text) in enumerate([("anomalous", "a"), ("benign", "b")])
    ]
    fast = _Fixed("fast", {"a": 0.2, "b": 0.1})
    slm = _Fixed("slm", {"a": 0.5, "b": 0.6}, fast=False)
    scorer_set = ScorerSet(
        scorers={"fast": fast, "slm": slm},
        shown=["fast", "slm", "ensemble", "ensemble+slm"],
        ensemble_members=["fast"],
    )
    scored = score_rows(rows, scorer_set)
    assert [item.outcomes["ensemble"].value for item in scored] == pytest.approx([0.2, 0.1])
    # The SLM weighs 0.5 there.
    assert [item.outcomes["ensemble+slm"].value for item in scored] == pytest.approx([1 - 0.8 * 0.75, 1 - 0.9 * 0.7])
    assert [item.outcomes["ensemble+slm"].flagged for item in scored] == [True, True]


def test_the_ensemble_is_a_noisy_or_that_flags_when_any_member_flags():
    rows = [
        EvalRow(file="d/set.jsonl", line=i, id=str(i), source="s", kind="tool_output", label=label, text=text)
        for i, (label, text) in enumerate([("anomalous", "a"), ("benign", "b"), ("anomalous", "c")])
    ]
    first = _Fixed("first", {"a": 0.6, "b": 0.2, "c": 0.1})
    second = _Fixed("second", {"a": 0.5, "b": 0.0, "c": 0.4})
    slow = _Fixed("slow", {"a": 0.9, "b": 0.1, "c": 0.8}, fast=False, tokens=100)
    scorer_set = ScorerSet(
        scorers={"first": first, "second": second, "slow": slow},
        shown=["first", "second", "slow", "ensemble"],
        ensemble_members=["first", "second"],
    )
    scored = score_rows(rows, scorer_set)
    ensemble = [item.outcomes["ensemble"] for item in scored]
    assert [outcome.value for outcome in ensemble] == pytest.approx([1 - 0.4 * 0.5, 0.2, 1 - 0.9 * 0.6])
    assert [outcome.flagged for outcome in ensemble] == [True, False, False]
    report = build_report(scored, scorer_set, primary="ensemble")
    assert set(report.summary) == {"set/tool_output", "all/tool_output", "comparison"}
    # Side by side: every shown scorer's recall at 5% FPR and AUC per kind, in the table and the JSON.
    assert set(report.summary["comparison"]["tool_output"]) == {"first", "second", "slow", "ensemble"}
    assert report.summary["comparison"]["tool_output"]["slow"]["auc"] == 1.0
    assert any("side by side" in line for line in report.lines)
    figures = report.metrics[("all", "tool_output", "ensemble")]
    assert (figures.precision, figures.recall, figures.fpr, figures.auc) == (1.0, 0.5, 0.0, 1.0)
    assert report.fast_scorers == ["first", "second"]
    assert any(line.startswith("slow throughput:") and "prompt tokens/s" in line for line in report.lines)
