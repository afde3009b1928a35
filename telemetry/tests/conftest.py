"""Fixtures for telemetry tests: the live policy, escalating rule and watched fleet of the apps it reads;
`traffic`, a few decisions and results of every kind made through the real API; and `spans`, an SDK
tracer provider recording into memory with Django and Celery instrumented.

OpenTelemetry lets a process set its global tracer provider once. `spans` installs its own and
takes it away afterwards, resetting the API's globals as OpenTelemetry's own test utilities do
(`opentelemetry.test.globals_test.reset_trace_globals`), so that every other test runs as
production does with tracing off: no provider at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

from approvals.tests.conftest import escalating  # noqa: F401  (fixture)
from guardian.tests.conftest import Fleet, fleet  # noqa: F401  (fixture)
from policy import services as policy_services
from policy.tests.builders import VALID_PAYMENT
from policy.tests.conftest import (
    LivePolicy,
    live_policy,  # noqa: F401  (fixture)
)

DECIDE = "/api/v1/tool-calls"


def ask(live: LivePolicy, arguments: dict | None = None, **extra) -> dict:
    response = live.client().post(
        DECIDE, {"tool": "payments.transfer", "arguments": arguments or VALID_PAYMENT, **extra}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def report(live: LivePolicy, call_id: str, output: dict, *, cost: float | None = None, status: str = "succeeded"):
    usage = {"cost": cost} if cost is not None else {}
    response = live.client().post(
        f"{DECIDE}/{call_id}/result", {"status": status, "output": output, "usage": usage}, format="json"
    )
    assert response.status_code == 200, response.content


@pytest.fixture
def traffic(live_policy: LivePolicy) -> LivePolicy:  # noqa: F811
    """Three allows (one result with a cost, one drifting), two denies (schema, limit), one escalation."""
    allowed = [ask(live_policy, {**VALID_PAYMENT, "amount": 100 + index}) for index in range(3)]
    report(live_policy, allowed[0]["id"], {"transfer_id": "t1", "status": "booked"}, cost=0.25)
    report(live_policy, allowed[1]["id"], {"unexpected": True})
    ask(live_policy, {**VALID_PAYMENT, "amount": "all of it"})
    ask(live_policy, {**VALID_PAYMENT, "amount": 6000})
    policy_services.rule_create(
        actor=live_policy.actor,
        name="Large payments need a human",
        expression="args.amount > 2000",
        effect="escalate",
        scope="tool",
        scope_tool="payments.transfer",
        message="Over 2,000 needs approval.",
    )
    ask(live_policy, {**VALID_PAYMENT, "amount": 2500})
    return live_policy


def _install(provider: TracerProvider | None) -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._TRACER_PROVIDER = None
    if provider is not None:
        trace.set_tracer_provider(provider)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span ended during the test, in memory; requests and tasks traced as configure() would."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _install(provider)
    DjangoInstrumentor().instrument(tracer_provider=provider)
    CeleryInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        CeleryInstrumentor().uninstrument()
        DjangoInstrumentor().uninstrument()
        _install(None)
        provider.shutdown()
