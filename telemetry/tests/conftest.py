"""Fixtures for telemetry tests: the live policy, escalating rule and watched fleet of the apps it reads."""

from __future__ import annotations

from approvals.tests.conftest import escalating  # noqa: F401  (fixture)
from guardian.tests.conftest import fleet  # noqa: F401  (fixture)
from policy.tests.conftest import live_policy  # noqa: F401  (fixture)
