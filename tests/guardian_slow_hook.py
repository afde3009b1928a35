"""Loaded into one test worker with `celery worker --include tests.guardian_slow_hook`, never in production.

It makes the guardian's scoring task announce that it started (a marker file) and then stall,
so the test can kill the worker mid-task and check that another worker still scores the
result exactly once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery.signals import task_prerun


@task_prerun.connect
def _stall_guardian_scoring(sender: Any = None, **kwargs: Any) -> None:
    if getattr(sender, "name", "") != "guardian.score_result":
        return
    Path(os.environ["WARDEN_TEST_TASK_STARTED"]).write_text(str(os.getpid()))
    time.sleep(120)
