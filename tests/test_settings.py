"""Settings: production refuses to start without its secrets, naming the missing one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION_ENV = {
    "SECRET_KEY": "x" * 50,
    "ALLOWED_HOSTS": "warden.example.com",
    "DATABASE_URL": "postgres://warden@db.example.com:5432/warden",
}


def _start_production(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in PRODUCTION_ENV}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings.production", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("missing", sorted(PRODUCTION_ENV))
def test_production_refuses_to_start_without(missing):
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != missing}
    result = _start_production(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{missing} must be set" in result.stderr


def test_production_starts_with_everything_set():
    result = _start_production(PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "started"


def test_unknown_warden_setting_is_refused_at_start():
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings_unknown_key"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "Unknown WARDEN setting(s): NOT_A_SETTING" in result.stderr
