"""Fixtures for tracing tests: an SDK tracer provider recording into memory, Django and Celery instrumented with it.

OpenTelemetry lets a process set its global tracer provider once. Each test here installs its
own and takes it away afterwards, resetting the API's globals as OpenTelemetry's own test
utilities do (`opentelemetry.test.globals_test.reset_trace_globals`), so that every other test
runs as production does with tracing off: no provider at all.
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

from guardian.tests.conftest import Fleet, fleet  # noqa: F401  (fixture)
from policy.tests.conftest import LivePolicy, live_policy  # noqa: F401  (fixture)


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
