"""Rollups behind the dashboards: charts read these, never the tool-call table.

A rollup row holds one period (a minute, or an hour built from its minutes) of one agent's use
of one tool: the decisions (by the engine's outcome), their latency as a fixed-bucket histogram
(so percentiles can be merged across rows), the results reported in the period, and the guardian
assessments made in it. Reason codes are rolled up beside it. Rows are rebuilt, not incremented:
a pass recomputes whole periods from the source tables (telemetry.rollups), so running it twice,
or after a crash, is harmless. Short windows read minutes, long ones hours.
"""

from __future__ import annotations

from django.db import models

from registry.models import Agent

# Upper bounds (µs) of the decision-latency histogram buckets; the last bucket is open-ended.
LATENCY_BUCKETS_US = (
    250,
    500,
    1_000,
    2_000,
    3_000,
    5_000,
    7_500,
    10_000,
    15_000,
    20_000,
    30_000,
    50_000,
    75_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
)


MINUTE, HOUR = 60, 3600


class Rollup(models.Model):
    """What one agent did with one tool in one period (a minute or an hour, UTC)."""

    id = models.BigAutoField(primary_key=True)
    span = models.PositiveIntegerField(help_text="Length of the period in seconds: 60 or 3600.")
    start = models.DateTimeField(help_text="Start of the period (UTC).")
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    tool = models.CharField(max_length=128)
    # Decisions made in the period, by the engine's outcome (an escalation counts as one even once settled).
    allowed = models.PositiveIntegerField(default=0)
    denied = models.PositiveIntegerField(default=0)
    escalated = models.PositiveIntegerField(default=0)
    latency_us_sum = models.BigIntegerField(default=0)
    # Non-cumulative counts per bucket of LATENCY_BUCKETS_US, plus one for anything slower.
    latency_histogram = models.JSONField(default=list)
    # Results reported in the period.
    results = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    drifted = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=16, decimal_places=6, default=0)
    # Guardian assessments made in the period, and how many of them at least flagged the call.
    assessed = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["span", "start", "agent", "tool"], name="telemetry_rollup_once")]
        indexes = [models.Index(fields=["agent", "span", "start"], name="telemetry_rollup_agent")]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} +{self.span}s {self.agent_id} {self.tool}"


class ReasonRollup(models.Model):
    """How often a reason code was given to one agent's calls in one period."""

    id = models.BigAutoField(primary_key=True)
    span = models.PositiveIntegerField()
    start = models.DateTimeField()
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    code = models.CharField(max_length=64)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["span", "start", "agent", "code"], name="telemetry_reason_once")]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} +{self.span}s {self.agent_id} {self.code}: {self.count}"


class AgentToolUse(models.Model):
    """Whether, and when last, an agent used a tool: what the sprawl report needs, over all time."""

    id = models.BigAutoField(primary_key=True)
    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="+")
    tool = models.CharField(max_length=128)
    first_call_at = models.DateTimeField()
    last_call_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["agent", "tool"], name="telemetry_tool_use_once")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.tool}: {self.first_call_at:%Y-%m-%d}..{self.last_call_at:%Y-%m-%d}"


class RollupState(models.Model):
    """One row: the instant up to which rollups are complete (later calls are read live)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    rolled_through = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"rolled through {self.rolled_through}"
