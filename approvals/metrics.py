"""Prometheus metrics of the approval queue: how long items wait for a human, and how many wait now.

The wait is observed when an approval settles (after commit, so a rolled-back settlement is
not counted). How many are pending is read from the database at scrape time rather than kept
as a gauge moved up and down: a gauge per process would be wrong as soon as one process opens
an approval and another settles it, and would start from zero after every restart.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from approvals import selectors

# People take seconds to hours; the default due time is an hour, a rule may give more.
WAIT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400)

APPROVAL_WAIT = Histogram(
    "warden_approval_wait_seconds",
    "Time from opening an approval to its settlement, by kind (escalation: an agent waits; review: a call "
    "that already ran) and outcome (approved, rejected, expired, cancelled).",
    ["kind", "outcome"],
    buckets=WAIT_BUCKETS,
)


def record_settled(*, kind: str, outcome: str, seconds: float) -> None:
    """Observe how long one approval waited before it settled as `outcome`."""
    APPROVAL_WAIT.labels(kind, outcome).observe(seconds)


class PendingApprovalsCollector:
    """`warden_approvals_pending{kind}`: approvals waiting for a human, counted in the database at scrape time."""

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "warden_approvals_pending", "Approvals waiting for a human, by kind (escalation, review).", labels=["kind"]
        )
        for kind, count in selectors.pending_count_by_kind().items():
            gauge.add_metric([kind], count)
        yield gauge
