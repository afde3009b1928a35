"""gunicorn settings Warden relies on (`gunicorn -c config/gunicorn.py config.wsgi`; bin/warden-run uses it).

With `PROMETHEUS_MULTIPROC_DIR` set, every worker writes its metrics to files in that directory
and /metrics adds them up (see telemetry.metrics). When a worker exits, the master tells
prometheus-client, so that gauges of the dead process stop counting as live; its counters and
histograms stay, as they must: what it counted happened.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import multiprocess


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master, after a worker exited (crashed, timed out, or was recycled)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
