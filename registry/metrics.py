"""Prometheus metrics of the registry: the fleet by lifecycle status.

Counted in the database at scrape time, not kept in a gauge each process moves: the status
changes in whichever process a person or a guardian happens to use, and the database is the
one place that knows the whole fleet.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from registry import selectors


class AgentsCollector:
    """`warden_agents{status}`: registered agents per lifecycle status, every status present."""

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "warden_agents",
            "Registered agents by lifecycle status (draft, active, suspended, quarantined, retired).",
            labels=["status"],
        )
        for status, count in selectors.agent_count_by_status().items():
            gauge.add_metric([status], count)
        yield gauge
