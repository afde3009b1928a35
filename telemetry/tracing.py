"""OpenTelemetry tracing for Warden's processes, configured by the standard `OTEL_*` variables.

`configure()` runs once per process: from config/wsgi.py (gunicorn, and `manage.py runserver`,
which loads the same WSGI application) and from the Celery worker's start (config/celery.py).
It installs an SDK tracer provider and instruments Django and Celery only when spans go
somewhere: an OTLP/HTTP collector (`OTEL_EXPORTER_OTLP_ENDPOINT` set, or
`OTEL_TRACES_EXPORTER=otlp`) or the console, for debugging. Otherwise it installs nothing, and
the spans Warden's code opens through `core.tracing` cost next to nothing. Unlike the
OpenTelemetry default, nothing is exported until asked for: the embedded mode sends nothing
over the network.

The exporter reads its own variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `..._HEADERS`,
`..._TIMEOUT`, `..._COMPRESSION`, the certificates), the SDK its sampler (`OTEL_TRACES_SAMPLER`),
batching (`OTEL_BSP_*`), limits (`OTEL_SPAN_ATTRIBUTE_*`) and resource
(`OTEL_RESOURCE_ATTRIBUTES`); `OTEL_SERVICE_NAME` defaults to "warden".
"""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

from core.tracing import is_tracing

DEFAULT_SERVICE_NAME = "warden"
EXPORTERS = ("otlp", "console", "none")
OTLP_PROTOCOL = "http/protobuf"  # the exporter Warden ships; gRPC would need another package
# Health probes, scrapes and static files would be most of the spans and tell nothing.
DEFAULT_EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$,/static/"

_configured = False  # per process: a prefork child inherits False, its parent never configures


def configure() -> bool:
    """Set up tracing for this process as the environment says, once; True when spans are exported.

    Call it after Django's settings are loaded (they read `.env` into the environment) and
    before the WSGI handler is built: the Django instrumentation works by adding a middleware.
    """
    global _configured
    if _configured:
        return is_tracing()
    _configured = True
    provider = tracer_provider()
    if provider is None:
        return False
    trace.set_tracer_provider(provider)
    _instrument()
    return True


def tracer_provider() -> TracerProvider | None:
    """The SDK tracer provider the `OTEL_*` variables ask for, or None when no span would go anywhere."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = exporter_names()
    if not exporters:
        return None
    provider = TracerProvider(resource=_resource())
    for name in exporters:
        if name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        else:
            # Printed as each span ends, in order: this exporter is for reading, not for shipping.
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    return provider


def exporter_names() -> list[str]:
    """`OTEL_TRACES_EXPORTER` as a list, "otlp" when unset but an OTLP endpoint is given; [] for none.

    An unknown exporter, or an OTLP protocol other than HTTP/protobuf, refuses to start rather
    than silently tracing nowhere.
    """
    raw = os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if raw:
        names = list(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    elif os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        names = ["otlp"]
    else:
        names = []
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ImproperlyConfigured(
            f"OTEL_TRACES_EXPORTER names {', '.join(unknown)}; Warden knows {', '.join(EXPORTERS)} "
            "(a comma-separated list, e.g. otlp,console)."
        )
    names = [name for name in names if name != "none"]
    if "otlp" in names:
        for variable in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
            protocol = os.environ.get(variable, "").strip()
            if protocol and protocol != OTLP_PROTOCOL:
                raise ImproperlyConfigured(
                    f"{variable}={protocol}: Warden exports OTLP over HTTP ({OTLP_PROTOCOL}). Unset it, and point "
                    "OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP port (usually 4318)."
                )
    return names


def _resource() -> Resource:
    """The resource the environment describes, named "warden" unless OTEL_SERVICE_NAME or attributes say otherwise."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


def _instrument() -> None:
    """Trace every Django request (extracting the caller's `traceparent`) and every Celery task, sent and run."""
    chosen = "OTEL_PYTHON_DJANGO_EXCLUDED_URLS" in os.environ or "OTEL_PYTHON_EXCLUDED_URLS" in os.environ
    excluded = None if chosen else DEFAULT_EXCLUDED_URLS
    DjangoInstrumentor().instrument(excluded_urls=excluded)
    CeleryInstrumentor().instrument()
