"""Celery tasks owned by core."""

from __future__ import annotations

import socket

from celery import shared_task


@shared_task(name="core.ping")
def ping() -> dict[str, str]:
    """Answer from whichever worker picks the task up: proves the broker and a worker work."""
    return {"pong": socket.gethostname()}
