"""Two separate processes: a change made in one is enforced by the other within a second.

Process B is a gunicorn server (production-like settings: the policy is rechecked every
0.5 s); process A is a separate Python process that revokes a key or suspends an agent
through the services. Each test uses a database of its own (a SQLite file, or a fresh
PostgreSQL database when DATABASE_URL points at PostgreSQL), since the two processes must
see each other's commits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.processes
ROOT = Path(__file__).resolve().parent.parent

SEED = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from core.actors import Actor
from policy import services as policy
from registry import services
actor = Actor.system("propagation-test")
owner = get_user_model().objects.create_user("owner", password="x-password-1")
services.tool_create(actor=actor, name="crm.read", side_effect="read")
policy.contract_create(actor=actor, tool="crm.read", activate=True, input_schema={
    "type": "object", "additionalProperties": False, "properties": {"id": {"type": "integer"}}})
keys = {}
for slug in ("alpha", "beta"):
    agent = services.agent_create(actor=actor, slug=slug, name=slug, owner=owner, model_name="m")
    services.agent_transition(actor=actor, agent=agent, to="active")
    services.grant_create(actor=actor, agent=agent, tool="crm.read", reason="Reads.")
    keys[slug] = services.credential_issue(actor=actor, agent=agent).key
print(json.dumps(keys))
"""

CHANGE = """
import sys, django
django.setup()
from core.actors import Actor
from registry import services
from registry.models import Agent
actor = Actor.system("propagation-test")
agent = Agent.objects.get(slug=sys.argv[2])
if sys.argv[1] == "revoke":
    services.credential_revoke(actor=actor, credential=agent.credentials.get(), reason="Leaked.")
else:
    services.agent_transition(actor=actor, agent=agent, to="suspended", reason="Investigating.")
"""


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[dict[str, Any]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "WARDEN_VAR_DIR": str(tmp_path),
        "WARDEN_POLICY_RECHECK_SECONDS": "0.5",
        "REDIS_URL": "",
    }
    run = {"cwd": ROOT, "env": env, "check": True, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], **run)
    keys = json.loads(subprocess.run([sys.executable, "-c", SEED], **run).stdout.strip().splitlines()[-1])
    port = free_port()
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", "1", "-b", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield {"url": url, "keys": keys, "run": run}
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _ask(url: str, key: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        f"{url}/api/v1/tool-calls",
        data=json.dumps({"tool": "crm.read", "arguments": {"id": 1}}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _refused(status: int, body: dict[str, Any]) -> bool:
    return status == 401 or body.get("decision") == "deny"


@pytest.mark.parametrize(("change", "slug"), [("revoke", "alpha"), ("suspend", "beta")])
def test_a_change_in_one_process_is_enforced_by_another_within_a_second(server, change, slug):
    url, key = server["url"], server["keys"][slug]
    status, body = _ask(url, key)
    assert (status, body.get("decision")) == (200, "allow"), body
    subprocess.run([sys.executable, "-c", CHANGE, change, slug], **server["run"])
    changed = time.monotonic()
    # Poll until refused; the server rechecks the policy version at most every 0.5 s.
    while True:
        status, body = _ask(url, key)
        elapsed = time.monotonic() - changed
        if _refused(status, body):
            break
        assert elapsed < 1.0, f"still allowed {elapsed:.2f} s after the change"
        time.sleep(0.02)
    if change == "revoke":
        assert (status, body["detail"]["reason"]) == (401, "revoked")
    else:
        assert body["reasons"][0]["code"] == "agent_not_active"
    # The other agent is unaffected.
    other = "beta" if slug == "alpha" else "alpha"
    assert _ask(url, server["keys"][other])[1]["decision"] == "allow"
