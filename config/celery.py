"""The Celery application. Configuration comes from Django settings under `CELERY_*`.

Tracing is set up in each process that runs tasks: the prefork pool's children at
`worker_process_init` (a span exporter's thread does not survive a fork, so their parent starts
none), the worker itself at `worker_init` for pools that run tasks in it (solo, threads).
Processes that only send tasks (the web server) are set up by config/wsgi.py.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from celery.concurrency import get_implementation
from celery.concurrency.prefork import TaskPool as PreforkPool

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("warden")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_init.connect
def trace_worker(sender: Any, **kwargs: Any) -> None:
    """Tracing for a worker that runs its tasks in its own process; a prefork worker leaves it to its children."""
    if not issubclass(get_implementation(sender.pool_cls), PreforkPool):
        _configure_tracing()


@signals.worker_process_init.connect
def trace_pool_process(**kwargs: Any) -> None:
    """Tracing for each process of the pool, after the fork."""
    _configure_tracing()


def _configure_tracing() -> None:
    # Imported here, not above: this module is imported with the settings, long before a worker starts.
    from telemetry import tracing

    tracing.configure()
