"""ASGI entry point. The sync WSGI path is faster for Warden's ORM-bound work (see DESIGN).

Tracing is set up as in config/wsgi.py: after Django's setup, before the handler loads the middleware.
"""

import os

import django
from django.core.handlers.asgi import ASGIHandler

from telemetry import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup(set_prefix=False)
tracing.configure()
application = ASGIHandler()
