"""The demo fleet simulator: `manage.py simulate` drives the demo agents through the SDK (started by `make run`)."""

from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "simulator"
    verbose_name = "Demo fleet simulator"
