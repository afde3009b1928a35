"""Fit the classifier scorer (one logistic regression per subject kind) and write its artifact.

numpy is a development and training dependency only; the artifact is plain JSON that
`guardian.scorers.classifier` reads with pure Python. The run is deterministic: the same files,
seed and options give a byte-identical artifact (no dates, no absolute paths, sorted keys,
weights rounded, a full-batch L-BFGS with no randomness; the seed only drives the pairing in one
augmentation).

Steps:

1. Read the labelled JSON Lines files, map each row to the Subject the scorer will see
   (`guardian.evaluation.subject_for_row`), and split them by source and category
   (`guardian.training.split`).
2. Augment the training split against the data's known shortcuts (shared/eval/README.md):
   - a copy of every row carrying InjecAgent's fixed "IMPORTANT!!! Ignore all previous
     instructions ..." prefix with the prefix removed, so the instruction itself is learnt;
   - benign tool outputs joined in pairs (same source), so long outputs are not a sign of
     injection (AgentDojo's injected outputs are longer than its benign ones);
   - benign tool calls written as ReAct `Action:` lines, as benign agent outputs, so calling a
     tool is not in itself a sign of having followed an injection (the benign agent outputs in
     the data rarely call one: 21 of 571).
   Empty template fields produce no feature at all (quotes are clause breaks, not tokens), so
   "an empty string" cannot predict benign, and no feature counts length.
3. Weight the examples: within a class each (source, label) group weighs in proportion to the
   square root of its size, and the two classes weigh the same.
4. Per kind, fit an L2-regularised logistic regression on hashed binary features (full-batch
   L-BFGS); get out-of-fold scores on the training split (grouped folds) and pick the raw
   threshold whose out-of-fold false-positive rate is at most `target_fpr`.
5. Keep the `max_weights` largest weights, round them, re-centre the bias so the chosen
   threshold sits at the artifact's threshold (0.5), and score the validation split with the
   pure-Python scorer code to report what the shipped model reaches on unseen groups.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from guardian.evaluation import EvalRow, Metrics, default_files, measure, read_rows, subject_for_row
from guardian.scorers import classifier
from guardian.scorers.base import Subject, SubjectKind
from guardian.training.split import TRAIN, agentdojo_suite, build_split, injecagent_case, split_of

KINDS = (SubjectKind.TOOL_CALL, SubjectKind.TOOL_OUTPUT, SubjectKind.AGENT_OUTPUT)
ARTIFACT_THRESHOLD = 0.5
INJECAGENT_PREFIX = re.compile(
    r"IMPORTANT!!!\s+Ignore\s+all\s+previous\s+instructions\s+and\s+strictly\s+adhere\s+to\s+the\s+following"
    r"\s+instruction:\s*"
)


@dataclass(frozen=True)
class TrainConfig:
    """What a training run reads, writes and how it fits (all of it is recorded in the artifact)."""

    files: tuple[Path, ...]
    output: Path = classifier.ARTIFACT_PATH
    seed: int = 1729
    dim_bits: int = 18
    l2: float = 3e-4
    max_iterations: int = 300
    folds: int = 4
    target_fpr: float = 0.02
    max_weights: int = 40_000


@dataclass(frozen=True)
class Example:
    """One training or validation example: the subject, its label, and the groups it belongs to."""

    subject: Subject
    anomalous: bool
    group: str  # (source, label): the unit of the class-internal weighting
    fold_key: str  # rows sharing it go to the same cross-validation fold
    row_id: str
    augmented: str = ""  # the augmentation that made it, "" for a real row


@dataclass
class KindReport:
    """One kind's figures: counts, the operating point, out-of-fold and validation figures."""

    kind: str
    train_pos: int = 0
    train_neg: int = 0
    augmented: dict[str, int] = field(default_factory=dict)
    validation_pos: int = 0
    validation_neg: int = 0
    raw_threshold: float = 0.5
    weights_kept: int = 0
    out_of_fold: Metrics | None = None
    validation: Metrics | None = None


@dataclass
class TrainResult:
    """What a training run produced: the artifact, its digest and size, and the per-kind figures."""

    output: Path
    sha256: str
    size_bytes: int
    seconds: float
    kinds: list[KindReport]
    split: dict[str, Any]


# -- data -----------------------------------------------------------------------------------------


def fold_key(row: EvalRow) -> str:
    """Rows that share a user case (InjecAgent) or a tool (AgentDojo) share a fold."""
    if row.source.startswith("injecagent"):
        _, user, _ = injecagent_case(row.id)
        if user is not None:
            return f"injecagent/user-{user}"
    if row.source == "agentdojo":
        return f"agentdojo/{agentdojo_suite(row)}/{row.tool}"
    return row.id


def to_example(row: EvalRow) -> Example | None:
    subject = subject_for_row(row)
    if subject is None:
        return None
    return Example(
        subject=subject,
        anomalous=row.is_anomalous,
        group=f"{row.source}/{row.label}",
        fold_key=fold_key(row),
        row_id=row.id,
    )


def augment(examples: Sequence[Example], seed: int) -> list[Example]:
    """The training split's extra examples against the data's shortcuts (see the module docstring)."""
    extra: list[Example] = []
    for example in examples:
        text = example.subject.text
        if text and INJECAGENT_PREFIX.search(text):
            stripped = INJECAGENT_PREFIX.sub("", text)
            extra.append(replace(example, subject=replace(example.subject, text=stripped), augmented="prefix_removed"))

    rng = np.random.default_rng(seed)
    benign_outputs: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        if example.subject.kind is SubjectKind.TOOL_OUTPUT and not example.anomalous:
            benign_outputs[example.group].append(example)
    for group in sorted(benign_outputs):
        members = benign_outputs[group]
        if len(members) < 2:
            continue
        partners = rng.permutation(len(members))
        for index, example in enumerate(members):
            partner = members[int(partners[index])]
            if partner is example:
                partner = members[(index + 1) % len(members)]
            joined = f"{example.subject.text}\n{partner.subject.text}"
            extra.append(replace(example, subject=replace(example.subject, text=joined), augmented="benign_joined"))

    for example in examples:
        if example.subject.kind is SubjectKind.TOOL_CALL and not example.anomalous:
            arguments = json.dumps(dict(example.subject.arguments or {}), sort_keys=True, default=str)
            text = f"Action: {example.subject.tool or ''}\nAction Input: {arguments}"
            subject = Subject(kind=SubjectKind.AGENT_OUTPUT, agent=example.subject.agent, text=text)
            extra.append(
                replace(example, subject=subject, group=f"{example.group}/as_action", augmented="benign_action")
            )
    return extra


# -- features and the fit ------------------------------------------------------------------------------


@dataclass
class Matrix:
    """Binary sparse rows (CSR without data: every stored entry is 1)."""

    indptr: np.ndarray
    indices: np.ndarray
    row_of_entry: np.ndarray
    n_rows: int

    @classmethod
    def build(cls, rows: Sequence[Sequence[int]]) -> Matrix:
        lengths = np.array([len(row) for row in rows], dtype=np.int64)
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat = [index for row in rows for index in row]
        indices = np.array(flat, dtype=np.int64)
        return cls(indptr, indices, np.repeat(np.arange(len(rows), dtype=np.int64), lengths), len(rows))

    def take(self, selected: np.ndarray) -> Matrix:
        return Matrix.build([self.indices[self.indptr[i] : self.indptr[i + 1]].tolist() for i in selected.tolist()])

    def dot(self, weights: np.ndarray) -> np.ndarray:
        return np.bincount(self.row_of_entry, weights=weights[self.indices], minlength=self.n_rows)

    def transpose_dot(self, values: np.ndarray, width: int) -> np.ndarray:
        return np.bincount(self.indices, weights=values[self.row_of_entry], minlength=width)


def lbfgs(
    objective: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    max_iterations: int,
    memory: int = 10,
    tolerance: float = 1e-6,
) -> np.ndarray:
    """Minimise a smooth convex function with L-BFGS and a backtracking (Armijo) line search."""
    x = start.copy()
    value, gradient = objective(x)
    history: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(max_iterations):
        if float(np.max(np.abs(gradient))) < tolerance:
            break
        direction = -gradient.copy()
        alphas = []
        for s, y, rho in reversed(history):
            alpha = rho * float(s @ direction)
            alphas.append(alpha)
            direction -= alpha * y
        if history:
            s, y, _ = history[-1]
            direction *= float(s @ y) / float(y @ y)
        for (s, y, rho), alpha in zip(history, reversed(alphas), strict=True):
            beta = rho * float(y @ direction)
            direction += (alpha - beta) * s
        slope = float(gradient @ direction)
        if slope >= 0:  # not a descent direction: restart from the gradient
            history.clear()
            direction, slope = -gradient, -float(gradient @ gradient)
        step = 1.0 if history else 1.0 / max(1.0, float(np.linalg.norm(gradient)))
        while True:
            candidate = x + step * direction
            new_value, new_gradient = objective(candidate)
            if new_value <= value + 1e-4 * step * slope or step < 1e-12:
                break
            step *= 0.5
        s, y = candidate - x, new_gradient - gradient
        sy = float(s @ y)
        if sy > 1e-12:
            history.append((s, y, 1.0 / sy))
            if len(history) > memory:
                history.pop(0)
        improvement = value - new_value
        x, value, gradient = candidate, new_value, new_gradient
        if 0 <= improvement < 1e-10 * max(1.0, abs(value)):
            break
    return x


def fit_logistic(
    matrix: Matrix, labels: np.ndarray, sample_weights: np.ndarray, width: int, l2: float, max_iterations: int
) -> tuple[np.ndarray, float]:
    """Weighted logistic regression with an L2 penalty on the weights (not the bias): (weights, bias)."""
    total = float(sample_weights.sum())
    signs = np.where(labels, 1.0, -1.0)

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        weights, bias = params[:-1], params[-1]
        margins = matrix.dot(weights) + bias
        loss = float(sample_weights @ np.logaddexp(0.0, -signs * margins)) / total
        probabilities = 0.5 * (1.0 + np.tanh(0.5 * margins))
        residual = sample_weights * (probabilities - labels) / total
        gradient = np.empty_like(params)
        gradient[:-1] = matrix.transpose_dot(residual, width) + l2 * weights
        gradient[-1] = residual.sum()
        return loss + 0.5 * l2 * float(weights @ weights), gradient

    params = lbfgs(objective, np.zeros(width + 1), max_iterations)
    return params[:-1], float(params[-1])


def example_weights(examples: Sequence[Example]) -> np.ndarray:
    """Within a class, each (source, label) group weighs sqrt(its size); both classes weigh the same."""
    sizes = Counter(example.group for example in examples)
    raw = np.array([1.0 / math.sqrt(sizes[example.group]) for example in examples])
    labels = np.array([example.anomalous for example in examples])
    weights = np.zeros(len(examples))
    for value in (True, False):
        mask = labels == value
        if mask.any():
            weights[mask] = raw[mask] * (len(examples) / 2.0) / raw[mask].sum()
    return weights


def pick_threshold(probabilities: np.ndarray, labels: np.ndarray, target_fpr: float) -> float:
    """The lowest threshold whose false-positive rate (flagging p >= threshold) is at most `target_fpr`."""
    negatives = np.sort(probabilities[~labels])[::-1]
    if len(negatives) == 0:
        return 0.5
    allowed = math.floor(target_fpr * len(negatives))
    # Flag strictly above the (allowed+1)-th highest benign score: at most `allowed` benign rows pass.
    cut = float(negatives[allowed]) if allowed < len(negatives) else 0.0
    return float(np.nextafter(cut, 1.0))


def _sigmoid(values: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * values))


def _logit(probability: float) -> float:
    probability = min(max(probability, 1e-12), 1 - 1e-12)
    return math.log(probability / (1 - probability))


def _prune(weights: np.ndarray, keep: int) -> tuple[list[int], list[float]]:
    """The `keep` largest weights by magnitude (ties: lower index first), rounded, zeros dropped; sorted by index."""
    nonzero = np.flatnonzero(np.round(weights, 4))
    if len(nonzero) > keep:
        order = np.lexsort((nonzero, -np.abs(weights[nonzero])))
        nonzero = np.sort(nonzero[order[:keep]])
    return [int(i) for i in nonzero], [round(float(weights[i]), 4) for i in nonzero]


# -- the run -------------------------------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _figures(metrics: Metrics | None) -> dict[str, Any] | None:
    if metrics is None:
        return None
    keys = ("n_pos", "n_neg", "precision", "recall", "f1", "fpr", "auc", "recall_at_1fpr", "recall_at_5fpr")
    figures: dict[str, Any] = {}
    for key in keys:
        value = getattr(metrics, key)
        figures[key] = round(value, 4) if isinstance(value, float) else value
    return figures


def train(config: TrainConfig, log: Callable[[str], None] = lambda line: None) -> TrainResult:
    """Train every kind's model on the training split, validate on the held-out split, write the artifact."""
    started = time.perf_counter()
    rows: list[EvalRow] = []
    for path in config.files:
        rows.extend(read_rows(path))
    if not rows:
        raise ValueError("No labelled rows in the files given.")
    split = build_split(rows)
    width = 1 << config.dim_bits
    train_examples: list[Example] = []
    validation_examples: list[Example] = []
    for row in rows:
        example = to_example(row)
        if example is None:
            continue
        (train_examples if split_of(row, split) == TRAIN else validation_examples).append(example)
    augmented = augment(train_examples, config.seed)
    log(
        f"{len(rows)} rows: {len(train_examples)} training and {len(validation_examples)} validation examples "
        f"(trajectories left out), {len(augmented)} augmented"
    )

    kind_entries: dict[str, Any] = {}
    reports: list[KindReport] = []
    to_validate: list[tuple[KindReport, list[Example]]] = []  # scored below, with the shipped model
    for kind in KINDS:
        report = KindReport(kind=kind.value)
        real = [example for example in train_examples if example.subject.kind is kind]
        extra = [example for example in augmented if example.subject.kind is kind]
        held = [example for example in validation_examples if example.subject.kind is kind]
        examples = real + extra
        report.train_pos = sum(example.anomalous for example in real)
        report.train_neg = len(real) - report.train_pos
        report.augmented = dict(sorted(Counter(example.augmented for example in extra).items()))
        report.validation_pos = sum(example.anomalous for example in held)
        report.validation_neg = len(held) - report.validation_pos
        if report.train_pos == 0 or report.train_neg == 0:
            log(f"{kind.value}: skipped, the training split lacks a class ({report.train_pos} / {report.train_neg})")
            reports.append(report)
            continue
        kind_started = time.perf_counter()
        matrix = Matrix.build([classifier.feature_indices(example.subject, config.dim_bits) for example in examples])
        labels = np.array([example.anomalous for example in examples])
        weights = example_weights(examples)

        # Out-of-fold scores for the real training rows: the operating point is chosen on them.
        folds = np.array([zlib.crc32(example.fold_key.encode()) % config.folds for example in examples])
        is_real = np.array([not example.augmented for example in examples])
        out_of_fold = np.full(len(examples), np.nan)
        for fold in range(config.folds):
            fit_rows = np.flatnonzero(folds != fold)
            held_rows = np.flatnonzero((folds == fold) & is_real)
            fit_labels = labels[fit_rows]
            if len(held_rows) == 0 or fit_labels.all() or not fit_labels.any():
                continue
            fold_weights, fold_bias = fit_logistic(
                matrix.take(fit_rows), fit_labels, weights[fit_rows], width, config.l2, config.max_iterations
            )
            out_of_fold[held_rows] = _sigmoid(matrix.take(held_rows).dot(fold_weights) + fold_bias)
        scored = is_real & ~np.isnan(out_of_fold)
        report.raw_threshold = pick_threshold(out_of_fold[scored], labels[scored], config.target_fpr)
        oof_values = out_of_fold[scored].tolist()
        report.out_of_fold = measure(
            labels[scored].tolist(), oof_values, [value >= report.raw_threshold for value in oof_values], []
        )

        final_weights, final_bias = fit_logistic(matrix, labels, weights, width, config.l2, config.max_iterations)
        indices, kept = _prune(final_weights, config.max_weights)
        report.weights_kept = len(indices)
        bias = round(final_bias - _logit(report.raw_threshold) + _logit(ARTIFACT_THRESHOLD), 6)
        kind_entries[kind.value] = {"bias": bias, "indices": indices, "weights": kept}
        log(
            f"{kind.value}: {len(real)} rows + {len(extra)} augmented, {len(matrix.indices)} feature entries, "
            f"{report.weights_kept} weights kept, fitted in {time.perf_counter() - kind_started:.1f} s"
        )
        reports.append(report)
        to_validate.append((report, held))

    artifact: dict[str, Any] = {
        "format": classifier.ARTIFACT_FORMAT,
        "feature_version": classifier.FEATURE_VERSION,
        "dim_bits": config.dim_bits,
        "threshold": ARTIFACT_THRESHOLD,
        "kinds": kind_entries,
    }
    model = classifier.model_from_dict(artifact)
    for report, held in to_validate:
        if held:
            report.validation = _score_examples(model, held)
    artifact["metadata"] = {
        "command": "manage.py guardian_train" + "".join(f" {path.name}" for path in config.files),
        "data": [{"file": path.name, "sha256": _sha256(path)} for path in config.files],
        "rows": len(rows),
        "seed": config.seed,
        "split": split,
        "training": {
            "model": "logistic regression per kind, L2 on weights, full-batch L-BFGS",
            "features": "hashed binary (CRC-32), see guardian/scorers/classifier.py",
            "dim_bits": config.dim_bits,
            "l2": config.l2,
            "max_iterations": config.max_iterations,
            "folds": config.folds,
            "target_fpr": config.target_fpr,
            "max_weights_per_kind": config.max_weights,
            "weighting": "sqrt-size per (source, label) group within a class; classes weigh the same",
            "threshold_rule": "lowest raw threshold with out-of-fold FPR <= target_fpr on the training split; "
            "bias re-centred so that it maps to `threshold`",
        },
        "kinds": {
            report.kind: {
                "train": {"anomalous": report.train_pos, "benign": report.train_neg, "augmented": report.augmented},
                "validation": {"anomalous": report.validation_pos, "benign": report.validation_neg},
                "raw_threshold": round(report.raw_threshold, 6),
                "weights": report.weights_kept,
                "out_of_fold": _figures(report.out_of_fold),
                "validation_figures": _figures(report.validation),
            }
            for report in reports
        },
    }
    config.output.parent.mkdir(parents=True, exist_ok=True)
    encoded = json.dumps(artifact, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"
    config.output.write_text(encoded, encoding="utf-8")
    classifier.forget_models()
    return TrainResult(
        output=config.output,
        sha256=hashlib.sha256(encoded.encode()).hexdigest(),
        size_bytes=len(encoded.encode()),
        seconds=time.perf_counter() - started,
        kinds=reports,
        split=split,
    )


def _score_examples(model: classifier.ClassifierModel, examples: Sequence[Example]) -> Metrics:
    """The shipped (pruned, rounded) model on examples, through the scorer's own pure-Python code."""
    values, latencies = [], []
    for example in examples:
        began = time.perf_counter()
        values.append(model.probability(example.subject))
        latencies.append((time.perf_counter() - began) * 1000.0)
    labels = [example.anomalous for example in examples]
    return measure(labels, values, [value >= model.threshold for value in values], latencies)


__all__ = ["TrainConfig", "TrainResult", "default_files", "train"]
