"""Measuring guardian scorers on labelled data: reading the rows, scoring them, the metrics, the report.

The labelled data is JSON Lines in the schema of shared/eval (see its README): one object per
line with `id`, `source`, `kind`, `agent_role`, `tool`, `arguments`, `text`, `label`
(`anomalous` / `benign`) and `category`. `manage.py guardian_eval` and
`benchmarks/guardian.py` both run `evaluate()`; `manage.py guardian_train` reads its rows with
`read_rows()` and turns them into subjects with `subject_for_row()`, so the classifier is
trained on exactly what it is later asked to judge.

The metric functions are pure: lists in, numbers (or None where a class is missing and the
metric is undefined) out.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from guardian.ensemble import combine
from guardian.scorers import registry
from guardian.scorers.base import AgentContext, Label, Score, Scorer, ScorerUnavailable, Subject, SubjectKind

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_GLOB = "../shared/eval/*.jsonl"  # relative to the repository root
KINDS = ("tool_call", "tool_output", "agent_output", "trajectory")
LABELS = ("anomalous", "benign")
SCORED_KINDS = (SubjectKind.TOOL_CALL, SubjectKind.TOOL_OUTPUT, SubjectKind.AGENT_OUTPUT)
ENSEMBLE = "ensemble"
ENSEMBLE_SLM = "ensemble+slm"  # the fast scorers' noisy-OR with the SLM's value added ...
SLM = "slm"
SLM_WEIGHT = 0.5  # ... at half weight: one confident SLM alone does not outweigh a fast scorer
SPLITS = ("all", "validation", "train")
SUMMARY_KEYS = ("precision", "recall", "fpr", "auc", "recall_at_1fpr", "recall_at_5fpr", "p50_ms", "p99_ms")
COLUMNS = (
    "n_pos",
    "n_neg",
    "precision",
    "recall",
    "F1",
    "FPR",
    "AUC",
    "recall@1%FPR",
    "recall@5%FPR",
    "p50_ms",
    "p99_ms",
)


class DatasetError(ValueError):
    """A labelled file or row that cannot be used; the message names the file and the line."""


class EvaluationError(ValueError):
    """The evaluation cannot run as asked (an unknown scorer, a primary that was not evaluated, ...)."""


def default_files() -> list[Path]:
    """The shared evaluation set next to the repository (../shared/eval/*.jsonl), sorted."""
    pattern = (ROOT / DEFAULT_DATA_GLOB).resolve()
    return sorted(pattern.parent.glob(pattern.name))


# -- rows -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EvalRow:
    """One labelled example as read from a JSON Lines file (schema of shared/eval)."""

    file: str
    line: int
    id: str
    source: str
    kind: str
    label: str
    category: str | None = None
    agent_role: str | None = None
    tool: str | None = None
    arguments: Mapping[str, Any] | None = None
    text: str = ""

    @property
    def is_anomalous(self) -> bool:
        return self.label == "anomalous"

    @property
    def stem(self) -> str:
        return Path(self.file).stem


def parse_row(data: Any, file: str, line: int) -> EvalRow:
    """Check one decoded line against the schema; DatasetError naming file and line otherwise."""

    def fail(problem: str) -> DatasetError:
        return DatasetError(f"{file}, line {line}: {problem}")

    if not isinstance(data, dict):
        raise fail(f"expected a JSON object, got {type(data).__name__}")
    kind, label = data.get("kind"), data.get("label")
    if kind not in KINDS:
        raise fail(f"'kind' must be one of {', '.join(KINDS)}, not {kind!r}")
    if label not in LABELS:
        raise fail(f"'label' must be 'anomalous' or 'benign', not {label!r}")
    for name in ("id", "source", "category", "agent_role", "tool", "text"):
        if data.get(name) is not None and not isinstance(data[name], str):
            raise fail(f"'{name}' must be a string or null, not {type(data[name]).__name__}")
    arguments = data.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise fail(f"'arguments' must be an object or null, not {type(arguments).__name__}")
    stem = Path(file).stem
    return EvalRow(
        file=file,
        line=line,
        id=data.get("id") or f"{stem}:{line}",
        source=data.get("source") or stem,
        kind=kind,
        label=label,
        category=data.get("category"),
        agent_role=data.get("agent_role"),
        tool=data.get("tool"),
        arguments=arguments,
        text=data.get("text") or "",
    )


def read_rows(path: str | Path) -> list[EvalRow]:
    """Every row of one JSON Lines file (blank lines skipped); DatasetError naming file and line."""
    name = str(path)
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115  (closed below; errors name the file)
    except OSError as error:
        raise DatasetError(f"{name}: cannot be read ({error.strerror or error}).") from error
    rows: list[EvalRow] = []
    with handle:
        try:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                try:
                    data = json.loads(raw)
                except json.JSONDecodeError as error:
                    raise DatasetError(
                        f"{name}, line {number}: not valid JSON ({error.msg}, column {error.colno})."
                    ) from None
                rows.append(parse_row(data, name, number))
        except UnicodeDecodeError as error:
            raise DatasetError(f"{name}: not UTF-8 text ({error.reason}).") from None
    return rows


def evenly_spaced(rows: Sequence[EvalRow], limit: int | None) -> list[EvalRow]:
    """At most `limit` rows taken at even steps through `rows` (files are grouped by kind and label)."""
    if limit is None or len(rows) <= limit:
        return list(rows)
    if limit <= 0:
        return []
    return [rows[(i * len(rows)) // limit] for i in range(limit)]


def subject_for_row(row: EvalRow) -> Subject | None:
    """The Subject a guardian would see for this row; None for trajectories (no scorer judges them)."""
    agent = AgentContext(role=row.agent_role or "")
    if row.kind == "tool_call":
        return Subject(kind=SubjectKind.TOOL_CALL, agent=agent, tool=row.tool, arguments=row.arguments, text=row.text)
    if row.kind == "tool_output":
        return Subject(kind=SubjectKind.TOOL_OUTPUT, agent=agent, tool=row.tool, arguments=row.arguments, text=row.text)
    if row.kind == "agent_output":
        return Subject(kind=SubjectKind.AGENT_OUTPUT, agent=agent, text=row.text)
    return None


# -- metrics --------------------------------------------------------------------------------------


def percentile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100); None for no samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def roc_auc(labels: Sequence[bool], values: Sequence[float]) -> float | None:
    """ROC AUC as the Mann-Whitney statistic (tied values share their average rank); None if a class is missing."""
    n_pos = sum(1 for label in labels if label)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(values)), key=lambda i: values[i])
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1  # ranks are 1-based
        rank_sum += average_rank * sum(1 for i in order[start : end + 1] if labels[i])
        start = end + 1
    u_statistic = rank_sum - n_pos * (n_pos + 1) / 2
    return u_statistic / (n_pos * n_neg)


def recall_at_fpr(labels: Sequence[bool], values: Sequence[float], max_fpr: float) -> float | None:
    """The best recall whose false-positive rate is at most `max_fpr`, over thresholds on the values.

    Tied values are flagged together (a threshold cannot split them), so ties count against the
    false-positive rate conservatively. None if a class is missing.
    """
    n_pos = sum(1 for label in labels if label)
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = sorted(range(len(values)), key=lambda i: values[i], reverse=True)
    best = 0.0
    true_pos = false_pos = 0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for i in order[start : end + 1]:
            if labels[i]:
                true_pos += 1
            else:
                false_pos += 1
        if false_pos / n_neg > max_fpr + 1e-12:
            break
        best = max(best, true_pos / n_pos)
        start = end + 1
    return best


@dataclass(frozen=True, slots=True)
class Counts:
    """The confusion counts of flags against labels."""

    true_pos: int
    false_pos: int
    false_neg: int
    true_neg: int

    @property
    def precision(self) -> float | None:
        flagged = self.true_pos + self.false_pos
        return self.true_pos / flagged if flagged else None

    @property
    def recall(self) -> float | None:
        positives = self.true_pos + self.false_neg
        return self.true_pos / positives if positives else None

    @property
    def fpr(self) -> float | None:
        negatives = self.false_pos + self.true_neg
        return self.false_pos / negatives if negatives else None

    @property
    def f1(self) -> float | None:
        precision, recall = self.precision, self.recall
        if recall is None:
            return None
        if precision is None or precision + recall == 0:
            return 0.0
        return 2 * precision * recall / (precision + recall)


def confusion(labels: Sequence[bool], flags: Sequence[bool]) -> Counts:
    """Count flags (the scorer's label says unsafe) against labels (anomalous)."""
    true_pos = sum(1 for label, flag in zip(labels, flags, strict=True) if label and flag)
    false_pos = sum(1 for label, flag in zip(labels, flags, strict=True) if not label and flag)
    n_pos = sum(1 for label in labels if label)
    return Counts(true_pos, false_pos, n_pos - true_pos, len(labels) - n_pos - false_pos)


@dataclass(frozen=True, slots=True)
class Metrics:
    """One scorer's figures on one slice of rows."""

    n_pos: int
    n_neg: int
    precision: float | None
    recall: float | None
    f1: float | None
    fpr: float | None
    auc: float | None
    recall_at_1fpr: float | None
    recall_at_5fpr: float | None
    p50_ms: float | None
    p99_ms: float | None

    def row(self) -> list[str]:
        """The table cells, in COLUMNS order."""
        cells = [self.precision, self.recall, self.f1, self.fpr, self.auc, self.recall_at_1fpr, self.recall_at_5fpr]
        return [
            str(self.n_pos),
            str(self.n_neg),
            *(cell(value, 3) for value in cells),
            cell(self.p50_ms, 3),
            cell(self.p99_ms, 3),
        ]

    def summary(self) -> dict[str, float | None]:
        """The figures the JSON line carries (rounded to 4 places)."""
        return {key: None if getattr(self, key) is None else round(getattr(self, key), 4) for key in SUMMARY_KEYS}


def measure(
    labels: Sequence[bool], values: Sequence[float], flags: Sequence[bool], latencies_ms: Sequence[float]
) -> Metrics:
    """All figures for one scorer on one slice: at its own threshold (flags), over its values, and its latency."""
    counts = confusion(labels, flags)
    return Metrics(
        n_pos=counts.true_pos + counts.false_neg,
        n_neg=counts.false_pos + counts.true_neg,
        precision=counts.precision,
        recall=counts.recall,
        f1=counts.f1,
        fpr=counts.fpr,
        auc=roc_auc(labels, values),
        recall_at_1fpr=recall_at_fpr(labels, values, 0.01),
        recall_at_5fpr=recall_at_fpr(labels, values, 0.05),
        p50_ms=percentile(latencies_ms, 50),
        p99_ms=percentile(latencies_ms, 99),
    )


def cell(value: float | None, digits: int = 3) -> str:
    """A figure for a table: `digits` decimals, or "-" when there is none."""
    return "-" if value is None else f"{value:.{digits}f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain fixed-width table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for cells in [headers, *rows]:
        parts = [str(cells[0]).ljust(widths[0])] + [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


# -- scoring ---------------------------------------------------------------------------------------


@dataclass
class ScorerSet:
    """The scorers an evaluation runs: those shown, the fast ones the ensemble combines, and notes."""

    scorers: dict[str, Scorer]
    shown: list[str]
    ensemble_members: list[str]
    notes: list[str] = field(default_factory=list)

    def handles(self, name: str, kind: SubjectKind) -> bool:
        if name in (ENSEMBLE, ENSEMBLE_SLM):
            members = [*self.ensemble_members, *([SLM] if name == ENSEMBLE_SLM else [])]
            return any(kind in self.scorers[member].kinds for member in members if member in self.scorers)
        return kind in self.scorers[name].kinds


def resolve_scorers(requested: Sequence[str] | None) -> ScorerSet:
    """Instantiate the scorers asked for (default: every available one, the ensemble and the ensemble with the SLM).

    A scorer that cannot run here (ScorerUnavailable, e.g. the SLM without a model) is left out
    with a one-line note; an unknown name is an EvaluationError. The ensemble always combines
    every available fast scorer, whichever are shown; `ensemble+slm` adds the SLM to them.
    """
    known = registry.names()
    combined = (ENSEMBLE, ENSEMBLE_SLM)
    wanted = list(requested) if requested else [*known, *combined]
    unknown = [name for name in wanted if name not in combined and name not in known]
    if unknown:
        raise EvaluationError(f"Unknown scorer(s): {', '.join(unknown)}; known: {', '.join([*known, *combined])}.")
    needed = set(wanted) | ({SLM} if ENSEMBLE_SLM in wanted else set())
    scorers: dict[str, Scorer] = {}
    notes: list[str] = []
    for name in known:
        if name not in needed and not (set(combined) & set(wanted)):
            continue
        try:
            scorer = registry.get(name)
            if not scorer.fast and name in needed:
                _probe(scorer)
        except ScorerUnavailable as error:
            if name in needed:
                notes.append(f"{name}: unavailable, left out ({error})")
            continue
        if name in needed or scorer.fast:
            scorers[name] = scorer
    members = [name for name in known if name in scorers and scorers[name].fast]
    available = {ENSEMBLE: bool(members), ENSEMBLE_SLM: bool(members) and SLM in scorers}
    shown = [name for name in wanted if name in scorers or available.get(name, False)]
    if ENSEMBLE in wanted and not members:
        notes.append("ensemble: no fast scorer is available, left out")
    if ENSEMBLE_SLM in wanted and not available[ENSEMBLE_SLM] and members:
        notes.append("ensemble+slm: the SLM is unavailable, left out")
    return ScorerSet(scorers=scorers, shown=shown, ensemble_members=members, notes=notes)


def _probe(scorer: Scorer) -> None:
    """Load a slow scorer's model now (the SLM loads lazily), so an unavailable one is noted up front."""
    load = getattr(scorer, "load", None)
    if callable(load):
        load()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One scorer's answer for one row: its value, whether it flagged, how long it took, its detail."""

    value: float
    flagged: bool
    latency_ms: float
    detail: Mapping[str, Any]


@dataclass
class ScoredRow:
    """A row with every shown scorer's outcome (absent: the scorer does not judge this kind)."""

    row: EvalRow
    outcomes: dict[str, Outcome]


def _timed_score(scorer: Scorer, subject: Subject) -> tuple[Score, float]:
    started = time.perf_counter()
    score = scorer.score(subject)
    return score, (time.perf_counter() - started) * 1000.0


def score_rows(rows: Sequence[EvalRow], scorer_set: ScorerSet) -> list[ScoredRow]:
    """Score every row that maps to a subject with each scorer that judges its kind.

    Each scorer first scores one subject of each kind untimed (warm-up: lazy loads, caches).
    A scorer that turns out unavailable while scoring is dropped with a note.
    """
    subjects = [(row, subject_for_row(row)) for row in rows]
    dropped: set[str] = set()
    names = list(scorer_set.scorers)

    def run_one(name: str, subject: Subject, row: EvalRow) -> tuple[Score, float] | None:
        try:
            return _timed_score(scorer_set.scorers[name], subject)
        except ScorerUnavailable as error:
            dropped.add(name)
            scorer_set.notes.append(f"{name}: unavailable while scoring {row.id}, left out ({error})")
            return None

    warmed: set[tuple[str, SubjectKind]] = set()
    results: list[ScoredRow] = []
    for row, subject in subjects:
        if subject is None:
            continue
        outcomes: dict[str, Outcome] = {}
        scores: dict[str, Score] = {}
        for name in names:
            if name in dropped or subject.kind not in scorer_set.scorers[name].kinds:
                continue
            if (name, subject.kind) not in warmed:
                warmed.add((name, subject.kind))
                if run_one(name, subject, row) is None:
                    continue
            timed = run_one(name, subject, row)
            if timed is None:
                continue
            score, elapsed = timed
            scores[name] = score
            outcomes[name] = Outcome(score.value, score.label == Label.UNSAFE, elapsed, score.detail)
        members = [name for name in scorer_set.ensemble_members if name in scores]
        for combined, extra in ((ENSEMBLE, []), (ENSEMBLE_SLM, [SLM])):
            if combined not in scorer_set.shown or not members or not all(name in scores for name in extra):
                continue
            parts = [*members, *extra]
            weights = dict.fromkeys(members, 1.0) | dict.fromkeys(extra, SLM_WEIGHT)
            outcomes[combined] = Outcome(
                value=combine([scores[name] for name in parts], weights),
                flagged=any(outcomes[name].flagged for name in parts),
                latency_ms=sum(outcomes[name].latency_ms for name in parts),
                detail={},
            )
        results.append(ScoredRow(row=row, outcomes={k: v for k, v in outcomes.items() if k in scorer_set.shown}))
    for name in dropped:
        if name in scorer_set.shown:
            scorer_set.shown.remove(name)
    return results


# -- the report -------------------------------------------------------------------------------------


@dataclass
class Report:
    """What an evaluation prints (`lines`) and its figures for the primary scorer (`summary`, the JSON line)."""

    lines: list[str]
    summary: dict[str, Any]  # "<place>/<kind>": the primary's figures; "comparison": every scorer's, per kind
    metrics: dict[tuple[str, str, str], Metrics]  # (file stem or "all", kind, scorer) -> figures
    notes: list[str]
    primary: str = ENSEMBLE
    fast_scorers: list[str] = field(default_factory=list)  # the shown scorers that may run on the decision path

    def fast_p99_ms(self) -> float | None:
        """The highest p99 latency of any fast scorer on any file and kind (pooled slices included)."""
        p99s = [
            m.p99_ms for (_, _, name), m in self.metrics.items() if name in self.fast_scorers and m.p99_ms is not None
        ]
        return max(p99s) if p99s else None


def _slice_metrics(scored: Sequence[ScoredRow], name: str) -> Metrics | None:
    present = [item for item in scored if name in item.outcomes]
    if not present:
        return None
    outcomes = [item.outcomes[name] for item in present]
    return measure(
        [item.row.is_anomalous for item in present],
        [outcome.value for outcome in outcomes],
        [outcome.flagged for outcome in outcomes],
        [outcome.latency_ms for outcome in outcomes],
    )


def _throughput(scored: Sequence[ScoredRow], name: str) -> str | None:
    outcomes = [item.outcomes[name] for item in scored if name in item.outcomes]
    seconds = sum(outcome.latency_ms for outcome in outcomes) / 1000.0
    if not outcomes or seconds <= 0:
        return None
    tokens = sum(int(outcome.detail.get("prompt_tokens", 0) or 0) for outcome in outcomes)
    return f"{name} throughput: {len(outcomes) / seconds:.1f} items/s, {tokens / seconds:.0f} prompt tokens/s"


def build_report(scored: Sequence[ScoredRow], scorer_set: ScorerSet, primary: str, title: str = "") -> Report:
    """Tables per file and kind, pooled per kind over all files, and the primary scorer's summary."""
    by_slice: dict[tuple[str, str], list[ScoredRow]] = defaultdict(list)
    stems: list[str] = []
    for item in scored:
        if item.row.stem not in stems:
            stems.append(item.row.stem)
        by_slice[(item.row.stem, item.row.kind)].append(item)
        by_slice[("all", item.row.kind)].append(item)
    lines: list[str] = [title] if title else []
    metrics: dict[tuple[str, str, str], Metrics] = {}
    summary: dict[str, Any] = {}
    for place in [*stems, "all"]:
        for kind in KINDS:
            items = by_slice.get((place, kind))
            if not items:
                continue
            rows = []
            for name in scorer_set.shown:
                figures = _slice_metrics(items, name)
                if figures is None:
                    continue
                metrics[(place, kind, name)] = figures
                rows.append([name, *figures.row()])
            heading = "all files" if place == "all" else place
            lines.append(f"\n== {heading} / {kind} ({len(items)} rows) ==")
            lines.append(table(["scorer", *COLUMNS], rows) if rows else "(no scorer judges this kind)")
            primary_figures = metrics.get((place, kind, primary))
            summary[f"{place}/{kind}"] = primary_figures.summary() if primary_figures else dict.fromkeys(SUMMARY_KEYS)
    comparison = _comparison(metrics, scorer_set.shown)
    if comparison:
        summary["comparison"] = comparison
        lines.append("\n== side by side, all files: recall at 5% FPR (AUC) ==")
        kinds = list(comparison)
        lines.append(
            table(
                ["scorer", *kinds],
                [
                    [name, *(_pair(comparison[kind].get(name)) for kind in kinds)]
                    for name in scorer_set.shown
                    if any(name in comparison[kind] for kind in kinds)
                ],
            )
        )
    for name in scorer_set.shown:
        scorer = scorer_set.scorers.get(name)
        if scorer is not None and not scorer.fast:
            line = _throughput(scored, name)
            if line:
                lines.append(line)
    fast = [name for name in scorer_set.shown if name in scorer_set.scorers and scorer_set.scorers[name].fast]
    return Report(
        lines=lines, summary=summary, metrics=metrics, notes=list(scorer_set.notes), primary=primary, fast_scorers=fast
    )


def _comparison(metrics: Mapping[tuple[str, str, str], Metrics], shown: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per kind (all files pooled), each shown scorer's recall at 5% FPR, AUC and p99 latency."""
    comparison: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        figures = {
            name: {"recall_at_5fpr": m.recall_at_5fpr, "auc": m.auc, "p99_ms": m.p99_ms}
            for name in shown
            if (m := metrics.get(("all", kind, name))) is not None
        }
        if len(figures) > 1:
            comparison[kind] = figures
    return comparison


def _pair(figures: Mapping[str, Any] | None) -> str:
    if not figures:
        return "-"
    return f"{cell(figures['recall_at_5fpr'], 3)} ({cell(figures['auc'], 3)})"


def select_split(rows: Sequence[EvalRow], split: str) -> list[EvalRow]:
    """The rows of the classifier's `train` or `validation` split (its artifact records the definition)."""
    if split == "all":
        return list(rows)
    from guardian.scorers.classifier import load_model
    from guardian.training.split import split_of

    try:
        definition = load_model().metadata["split"]
    except (ScorerUnavailable, KeyError) as error:
        raise EvaluationError(
            f"--split {split} needs the classifier artifact, which records the split ({error})."
        ) from error
    return [row for row in rows if split_of(row, definition) == split]


def evaluate(
    paths: Sequence[str | Path],
    scorers: Sequence[str] | None = None,
    primary: str | None = None,
    split: str = "all",
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """Read the files, keep the split's rows (at most `limit` per file), score them, and report.

    `primary` (the scorer in the summary) defaults to the ensemble, or the first scorer asked for
    when the ensemble is not among them.

    Trajectory rows are skipped (no scorer judges a whole trajectory) with a note.
    """
    if split not in SPLITS:
        raise EvaluationError(f"--split must be one of {', '.join(SPLITS)}, not {split!r}.")
    if not paths:
        raise EvaluationError("No labelled files given.")
    scorer_set = resolve_scorers(scorers)
    if primary is None:
        primary = ENSEMBLE if ENSEMBLE in scorer_set.shown or not scorer_set.shown else scorer_set.shown[0]
    if primary not in scorer_set.shown:
        raise EvaluationError(
            f"The primary scorer {primary!r} is not evaluated here; evaluated: {', '.join(scorer_set.shown) or 'none'}."
        )
    rows: list[EvalRow] = []
    skipped = 0
    for path in paths:
        selected = select_split(read_rows(path), split)
        kept = evenly_spaced(selected, limit)
        skipped += sum(1 for row in kept if row.kind == "trajectory")
        rows.extend(kept)
        if progress:
            progress(f"{path}: {len(kept)} rows ({split} split)")
    scored = score_rows(rows, scorer_set)
    if skipped:
        scorer_set.notes.append(f"{skipped} trajectory rows skipped: no scorer judges a whole trajectory")
    members = ", ".join(scorer_set.ensemble_members) or "none"
    title = f"Scorers: {', '.join(scorer_set.shown)} (ensemble of {members}); primary: {primary}; split: {split}"
    return build_report(scored, scorer_set, primary, title=title)
