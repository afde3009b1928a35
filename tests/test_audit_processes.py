"""The trail under real concurrency: separate processes deciding and sealing at once, and a sealer killed mid-block.

Each test has a database of its own (a SQLite file, or a fresh PostgreSQL database), shared
by the processes it starts.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parent.parent

SEED = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from core.actors import Actor
from policy import services as policy
from registry import services
actor = Actor.system("audit-test")
owner = get_user_model().objects.create_user("owner", password="x-password-1")
services.tool_create(actor=actor, name="crm.read", side_effect="read")
policy.contract_create(actor=actor, tool="crm.read", activate=True, input_schema={
    "type": "object", "additionalProperties": False, "properties": {"id": {"type": "integer"}}})
keys = []
for n in range(4):
    agent = services.agent_create(actor=actor, slug=f"agent-{n}", name=f"Agent {n}", owner=owner, model_name="m")
    services.agent_transition(actor=actor, agent=agent, to="active")
    services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="Reads.")
    keys.append(services.credential_issue(actor=actor, agent=agent).key)
print(json.dumps(keys))
"""

DECIDE = """
import sys, django
django.setup()
from policy import decisions
principal = decisions.authenticate_key(sys.argv[1])
for i in range(int(sys.argv[2])):
    decisions.decide_call(principal, decisions.CallRequest(tool="crm.read", arguments={"id": i}))
"""

SEAL_LOOP = """
import os, sys, time, django
django.setup()
from django.db import OperationalError
from audit.sealing import seal_pending
stop = sys.argv[1]
while not os.path.exists(stop):
    try:
        seal_pending()
    except OperationalError:  # SQLite: the database was busy; try again
        pass
    time.sleep(0.02)
"""

# Seal with a sealer that dies (SIGKILL: no cleanup, no rollback by Python) right after writing
# block `sys.argv[1]` and its seals, before the transaction commits.
KILLED_SEALER = """
import os, signal, sys, django
django.setup()
from audit import sealing
die_at = int(sys.argv[1])
original = sealing._append_block
def append_then_die(*args):
    block = original(*args)
    if block.height == die_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return block
sealing._append_block = append_then_die
sealing.seal_pending()
"""

CHECK = """
import json, django
django.setup()
from django.db.models import Count
from audit.models import AuditRecord, Block, Seal
from audit.verification import verify_trail
from policy.models import ToolCall
decided = AuditRecord.objects.filter(action="tool_call.decided")
per_call = decided.values("subject_id").annotate(n=Count("seq"))
report = verify_trail()
print(json.dumps({
    "calls": ToolCall.objects.count(),
    "decided_records": decided.count(),
    "calls_with_one_record": sum(1 for row in per_call if row["n"] == 1),
    "call_ids_match": set(str(pk) for pk in ToolCall.objects.values_list("id", flat=True))
        == set(decided.values_list("subject_id", flat=True)),
    "records": AuditRecord.objects.count(),
    "seals": Seal.objects.count(),
    "unsealed": AuditRecord.objects.filter(seal__isnull=True).count(),
    "blocks": Block.objects.count(),
    "heights": list(Block.objects.order_by("height").values_list("height", flat=True)),
    "ok": report.ok,
    "problems": [str(p) for p in report.problems],
    "late": report.late_total,
}))
"""


@pytest.fixture
def shared(tmp_path: Path, database_url: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "WARDEN_VAR_DIR": str(tmp_path),
        "REDIS_URL": "",
        "WARDEN_LOOP_MAX_REPEATS": "100000",
    }
    run = {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "timeout": 300}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, **run)
    keys = json.loads(subprocess.run([sys.executable, "-c", SEED], check=True, **run).stdout.strip().splitlines()[-1])
    return {"env": env, "run": run, "keys": keys, "tmp": tmp_path}


def check(shared: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", CHECK], check=True, **shared["run"]).stdout
    return json.loads(out.strip().splitlines()[-1])


def seal(shared: dict[str, Any], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", "audit_seal", *args], check=True, **shared["run"])


def test_processes_deciding_and_sealing_at_once_lose_nothing_and_seal_everything_once(shared):
    calls_each = 60
    stop = shared["tmp"] / "stop"
    popen = {"cwd": ROOT, "env": shared["env"], "stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    sealers = [subprocess.Popen([sys.executable, "-c", SEAL_LOOP, str(stop)], **popen) for _ in range(2)]
    deciders = [
        subprocess.Popen([sys.executable, "-c", DECIDE, key, str(calls_each)], **popen) for key in shared["keys"]
    ]
    for process in deciders:
        _, err = process.communicate(timeout=240)
        assert process.returncode == 0, err
    stop.touch()
    for process in sealers:
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
    seal(shared)
    result = check(shared)
    total = calls_each * len(shared["keys"])
    assert result["calls"] == result["decided_records"] == result["calls_with_one_record"] == total, result
    assert result["call_ids_match"], result
    assert result["seals"] == result["records"], result
    assert result["unsealed"] == 0, result
    assert result["heights"] == list(range(result["blocks"])), result
    assert result["ok"], result["problems"]


@pytest.mark.parametrize("die_at", [0, 2])
def test_a_sealer_killed_mid_block_leaves_nothing_half_written_and_the_next_run_resumes(shared, die_at):
    subprocess.run([sys.executable, "-c", DECIDE, shared["keys"][0], "30"], check=True, **shared["run"])
    env = {**shared["env"], "WARDEN_AUDIT_SEAL_BATCH": "10"}
    killed = subprocess.run([sys.executable, "-c", KILLED_SEALER, str(die_at)], **{**shared["run"], "env": env})
    assert killed.returncode == -signal.SIGKILL
    before = check(shared)
    assert before["blocks"] == die_at, before  # the blocks before the one it died in were committed
    assert before["seals"] == 10 * die_at, before
    assert before["ok"], before["problems"]
    time.sleep(0.1)
    subprocess.run([sys.executable, "manage.py", "audit_seal"], check=True, **{**shared["run"], "env": env})
    after = check(shared)
    assert after["unsealed"] == 0, after
    assert after["seals"] == after["records"], after
    assert after["heights"] == list(range(after["blocks"])), after
    assert after["ok"], after["problems"]


@pytest.mark.worker
def test_celery_beat_seals_new_records_every_few_seconds(shared):
    subprocess.run([sys.executable, "-c", DECIDE, shared["keys"][0], "20"], check=True, **shared["run"])
    assert check(shared)["unsealed"] > 0
    env = {
        key: value for key, value in shared["env"].items() if key not in {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"}
    }
    env |= {"CELERY_BROKER_URL": "filesystem://", "WARDEN_AUDIT_SEAL_SECONDS": "0.5"}  # a broker of the test's own
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "--pool=solo", "--loglevel=INFO"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while (result := check(shared))["unsealed"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert result["unsealed"] == 0, result
        assert result["ok"], result["problems"]
        subprocess.run([sys.executable, "-c", DECIDE, shared["keys"][1], "5"], check=True, **shared["run"])
        while (result := check(shared))["unsealed"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert (result["unsealed"], result["ok"]) == (0, True), result
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, output[-3000:]
    assert "audit.seal" in output
