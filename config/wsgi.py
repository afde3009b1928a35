"""WSGI entry point (gunicorn config.wsgi; `manage.py runserver` serves the same application).

Tracing is set up between Django's setup and the handler: the settings have read `.env` by then,
and the Django instrumentation's middleware is in place before the handler loads the middleware.
"""

import os

import django
from django.core.handlers.wsgi import WSGIHandler

from telemetry import tracing

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup(set_prefix=False)
tracing.configure()
application = WSGIHandler()
