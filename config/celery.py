"""The Celery application. Configuration comes from Django settings under `CELERY_*`."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("warden")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
