"""App configuration for the registry."""

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Agents, roles, grants, credentials."""

    name = "registry"
    verbose_name = "Agent registry"
