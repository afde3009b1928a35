"""The embedded default used by `make run`: SQLite, filesystem Celery broker, no services.

The secret key is generated once and kept in `var/secret_key` (mode 0600), so sessions
survive restarts and no key is ever committed.
"""

from __future__ import annotations

import os
import secrets

from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR, env


def _local_secret_key() -> str:
    """Read the local secret key from var/, creating it on first start."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _local_secret_key()
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
