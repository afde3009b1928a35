"""App configuration for `core`."""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    """Validates Warden's settings and prepares the embedded Celery broker's and results' folders."""

    name = "core"
    verbose_name = "Warden core"

    def ready(self) -> None:
        from core.conf import warden_settings

        warden_settings.validate()
        folders = [
            settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(key)
            for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
        ]
        if settings.CELERY_RESULT_BACKEND.startswith("file://"):
            folders.append(settings.CELERY_RESULT_BACKEND.removeprefix("file://"))
        beat_schedule = getattr(settings, "CELERY_BEAT_SCHEDULE_FILENAME", "")
        if beat_schedule:
            folders.append(str(Path(beat_schedule).parent))
        for folder in filter(None, folders):
            Path(str(folder)).mkdir(parents=True, exist_ok=True)
