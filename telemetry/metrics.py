"""What `/metrics` exposes: every app's Prometheus metrics, in one process or added up over many.

Each app defines its metrics next to what they measure (`policy.metrics`, `approvals.metrics`,
`guardian.metrics`, `registry.metrics`). Counters and histograms live in the process that
observes them. Under gunicorn (several workers) and Celery, set `PROMETHEUS_MULTIPROC_DIR`: each
process then writes its values to files there, and a scrape, whichever worker answers it, adds
up the files of every process (prometheus-client's multiprocess mode). Gauges read from the
database (pending approvals, agents by status) are collected at scrape time by the worker that
answers, so they are reported once, never once per worker.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from django.db import DatabaseError
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from approvals.metrics import PendingApprovalsCollector
from registry.metrics import AgentsCollector

logger = logging.getLogger(__name__)


class DatabaseCollector:
    """A collector that reads the database at scrape time; if the database fails, this scrape goes without it.

    The counters of the decision path are worth having most when the database is in trouble,
    so an outage drops the database-backed families (alert on their absence), not the scrape.
    """

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def collect(self) -> Iterable[Metric]:
        try:
            return list(self.collector.collect())
        except DatabaseError:
            logger.warning("Metrics: %s could not read the database.", type(self.collector).__name__, exc_info=True)
            return []


DATABASE_COLLECTORS = (DatabaseCollector(PendingApprovalsCollector()), DatabaseCollector(AgentsCollector()))


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, when this process runs in it."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def scrape_registry() -> CollectorRegistry:
    """A registry for one scrape: this process's metrics (or every process's) plus the database gauges."""
    registry = CollectorRegistry()
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(REGISTRY)
    for collector in DATABASE_COLLECTORS:
        registry.register(collector)
    return registry


def exposition() -> bytes:
    """Every metric in Prometheus's text format (its content type: `prometheus_client.CONTENT_TYPE_LATEST`)."""
    return generate_latest(scrape_registry())
