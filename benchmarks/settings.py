"""Settings for the benchmark server: exactly what `make run` serves, plus the baseline view's URL."""

from __future__ import annotations

from config.settings.local import *  # noqa: F403

ROOT_URLCONF = "benchmarks.baseline_urls"
