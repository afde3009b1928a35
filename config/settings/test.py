"""Settings for the test suite: the local defaults with fast hashing and deterministic keys.

`DATABASE_URL` and `CELERY_BROKER_URL` still come from the environment, so the same suite
runs on SQLite and on PostgreSQL/Redis (see .ci/run).
"""

from __future__ import annotations

from config.settings.base import *  # noqa: F403
from config.settings.base import env

SECRET_KEY = env.str("SECRET_KEY", default="test-only-secret-key-not-for-production-use-0123456789")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests never run collectstatic: static files come from the finders, and WhiteNoise does not
# look for (and warn about) a collected directory that does not exist.
STATIC_ROOT = None  # type: ignore[assignment]  # base declares a Path; None turns collecting off
WHITENOISE_USE_FINDERS = True

# Every policy change is seen by the very next call (production rechecks every 0.5 s).
WARDEN = {**WARDEN, "POLICY_RECHECK_SECONDS": 0}

# Tasks the code under test sends run in the test's process, at once (a test that needs a real
# worker starts one, and sets WARDEN_CELERY_EAGER=0 for the processes that send to it).
CELERY_TASK_ALWAYS_EAGER = env.bool("WARDEN_CELERY_EAGER", default=True)
CELERY_TASK_EAGER_PROPAGATES = True
