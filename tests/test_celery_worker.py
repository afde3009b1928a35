"""A real Celery worker process picks up a task and answers, on the configured broker.

On the embedded default that is kombu's filesystem transport; in CI's second run it is
Redis (CELERY_BROKER_URL). The worker is a separate process started like `make run` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parent.parent


def _client_app(var_dir: Path) -> Celery:
    """A Celery client configured like the worker: same broker and result backend."""
    broker = settings.CELERY_BROKER_URL
    app = Celery("warden-test-client", broker=broker)
    if broker.startswith("filesystem"):
        queue = var_dir / "celery" / "queue"
        queue.mkdir(parents=True, exist_ok=True)
        (var_dir / "celery" / "results").mkdir(parents=True, exist_ok=True)
        control = var_dir / "celery" / "control"
        control.mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport_options = {
            "data_folder_in": str(queue),
            "data_folder_out": str(queue),
            "control_folder": str(control),
        }
        app.conf.result_backend = f"file://{var_dir / 'celery' / 'results'}"
    else:
        app.conf.result_backend = settings.CELERY_RESULT_BACKEND
    return app


@pytest.fixture
def worker(tmp_path: Path):
    """Start `celery -A config worker` on a private queue; stop it with SIGTERM afterwards."""
    queue = f"warden-test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "WARDEN_VAR_DIR": str(tmp_path)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--queues",
            queue,
            "--hostname",
            f"{queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield queue, _client_app(tmp_path), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_worker_answers_a_task_and_shuts_down_cleanly(worker):
    queue, app, process = worker
    result = app.send_task("core.ping", queue=queue)
    answer = result.get(timeout=60)
    assert set(answer) == {"pong"}
    assert answer["pong"]

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "core.ping" in output  # the task was registered by autodiscovery and run
