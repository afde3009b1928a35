"""Where tracing is set up: the WSGI application installs it only when spans go somewhere, and a Celery
worker in the processes that run its tasks (see config/wsgi.py, config/celery.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from config import celery as celery_config
from telemetry import tracing as telemetry_tracing

ROOT = Path(__file__).resolve().parent.parent

CONFIGURED = """
import json
import config.wsgi
from django.conf import settings
from opentelemetry import trace
print(json.dumps([type(trace.get_tracer_provider()).__name__, settings.MIDDLEWARE[0]]))
"""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, ["ProxyTracerProvider", "django.middleware.security.SecurityMiddleware"]),
        (
            {"OTEL_TRACES_EXPORTER": "console"},
            ["TracerProvider", "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"],
        ),
    ],
    ids=["off", "console"],
)
def test_the_wsgi_application_installs_tracing_only_when_spans_go_somewhere(tmp_path, variables, expected):
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.test", WARDEN_VAR_DIR=str(tmp_path), **variables)
    run = subprocess.run(
        [sys.executable, "-c", CONFIGURED], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(run.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize(("pool", "configured"), [("prefork", False), ("solo", True), ("threads", True)])
def test_a_worker_traces_in_the_processes_that_run_its_tasks(monkeypatch, pool, configured):
    calls = []
    monkeypatch.setattr(telemetry_tracing, "configure", lambda: calls.append(pool) or True)
    celery_config.trace_worker(sender=SimpleNamespace(pool_cls=pool))
    assert calls == ([pool] if configured else [])
    celery_config.trace_pool_process()
    assert calls[-1] == pool  # every pool process (prefork's children, solo's own) is set up after the fork
