"""Prometheus metrics of the guardians: the scores their scorers give, and quarantines started.

Observed once the assessment or quarantine commits, so a scoring task that runs twice (a
redelivered message) or a transaction that rolls back counts nothing extra. The scorer label
is bounded by the scorer registry; agents and guardians are never labels.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Histogram

from guardian.scorers import Score

SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

GUARDIAN_SCORE = Histogram(
    "warden_guardian_score",
    "Scores in [0, 1] that guardians' scorers gave the tool calls and outputs they judged, by scorer.",
    ["scorer"],
    buckets=SCORE_BUCKETS,
)
QUARANTINES = Counter(
    "warden_quarantines_total",
    "Quarantines started: agents whose authority was frozen until a human releases them.",
)


def record_scores(scores: Iterable[Score]) -> None:
    """Observe each score of one stored assessment."""
    for score in scores:
        GUARDIAN_SCORE.labels(score.scorer).observe(score.value)


def record_quarantine() -> None:
    """Count one quarantine that started."""
    QUARANTINES.inc()
