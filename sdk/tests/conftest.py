"""The scripted local Warden every SDK test file talks to."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sdk_fake_warden import FakeWarden, fake_warden


@pytest.fixture
def warden() -> Iterator[FakeWarden]:
    with fake_warden() as server:
        yield server
