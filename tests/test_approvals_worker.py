"""The approval queue with a real Celery worker and beat (as `make run` starts them), on the configured
broker: webhook retries with backoff against a local receiver, expiry by the periodic task, and the
arrival e-mail sent by the worker.

The processes share a database of the test's own (a SQLite file, or a fresh PostgreSQL database).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.worker
ROOT = Path(__file__).resolve().parent.parent

SEED = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from core.actors import Actor
from policy import services as policy
from registry import services
from approvals import webhooks
actor = Actor.system("approvals-test")
owner = get_user_model().objects.create_user("owner", password="x-password-1")
approver = get_user_model().objects.create_user(
    "alice", email="alice@example.org", password="x-password-1", is_staff=True)
approver.groups.add(Group.objects.get(name="approvers"))
services.tool_create(actor=actor, name="payments.transfer", side_effect="financial")
policy.contract_create(actor=actor, tool="payments.transfer", activate=True, input_schema={
    "type": "object", "additionalProperties": False, "properties": {"amount": {"type": "integer"}}})
policy.rule_create(actor=actor, name="big", expression="args.amount > 1000", effect="escalate")
agent = services.agent_create(actor=actor, slug="payer", name="Payer", owner=owner, model_name="m")
services.agent_transition(actor=actor, agent=agent, to="active")
services.grant_create(actor=actor, agent=agent, tool="payments.transfer", reason="Pays.")
key = services.credential_issue(actor=actor, agent=agent).key
registered = webhooks.register(agent_id=str(agent.pk), url=__import__("sys").argv[1], actor=actor)
print(json.dumps({"key": key, "secret": registered.secret}))
"""

ESCALATE = """
import json, sys, django
django.setup()
from policy import decisions
principal = decisions.authenticate_key(sys.argv[1])
calls = [decisions.decide_call(principal, decisions.CallRequest(
    tool="payments.transfer", arguments={"amount": 5000 + n})) for n in range(2)]
from approvals.models import Approval
print(json.dumps([{"call": str(c.pk), "approval": str(Approval.objects.get(tool_call=c, kind="escalation").pk),
                   "decision": c.decision} for c in calls]))
"""

APPROVE_ONE_EXPIRE_OTHER = """
import sys, datetime as dt, django
django.setup()
from django.contrib.auth import get_user_model
from django.utils import timezone
from approvals import services
from approvals.models import Approval
services.vote(approval_id=sys.argv[1], user=get_user_model().objects.get(username="alice"), verdict="approve",
              comment="Invoice checked.")
Approval.objects.filter(pk=sys.argv[2]).update(due_at=timezone.now() - dt.timedelta(seconds=1))
print("{}")
"""

STATE = """
import json, sys, django
django.setup()
from approvals.models import Approval, Delivery
from audit.models import AuditRecord
from policy.models import ToolCall
rows = {str(a.pk): [a.state, a.tool_call.decision, a.notified_at is not None]
        for a in Approval.objects.select_related("tool_call")}
deliveries = [[d.state, d.attempts, list(d.attempt_log.values_list("status_code", flat=True))]
              for d in Delivery.objects.all()]
actions = sorted(set(AuditRecord.objects.values_list("action", flat=True)))
print(json.dumps({"approvals": rows, "deliveries": deliveries, "actions": actions}))
"""


class _Receiver:
    def __init__(self, script: list[int]) -> None:
        self.script = script
        self.hits: list[tuple[float, dict[str, str], bytes]] = []


@pytest.fixture
def receiver() -> Iterator[tuple[str, _Receiver]]:
    state = _Receiver([500, 502])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.hits.append((time.monotonic(), dict(self.headers.items()), body))
            self.send_response(state.script.pop(0) if state.script else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", state
    server.shutdown()
    server.server_close()


def _python(code: str, *args: str, run: dict[str, Any]) -> Any:
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, **run).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_a_worker_with_beat_retries_webhooks_with_backoff_expires_overdue_items_and_mails_approvers(
    tmp_path: Path, database_url: str, receiver: tuple[str, _Receiver]
) -> None:
    url, state = receiver
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DATABASE_URL": database_url,
        "WARDEN_VAR_DIR": str(tmp_path),
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "WARDEN_WEBHOOK_BACKOFF_SECONDS": "0.6",
        "WARDEN_APPROVAL_EXPIRY_CHECK_SECONDS": "1",
        "WARDEN_AUDIT_SEAL_SECONDS": "60",
    }
    run = {"cwd": ROOT, "env": env, "capture_output": True, "text": True, "timeout": 120}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], check=True, **run)
    seeded = _python(SEED, url, run=run)
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-B", "--pool=solo", "--loglevel=INFO"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = time.monotonic() + 60
        while " ready." not in log.read_text() and time.monotonic() < ready and worker.poll() is None:
            time.sleep(0.2)
        calls = _python(ESCALATE, seeded["key"], run=run)
        assert [call["decision"] for call in calls] == ["escalate", "escalate"]
        _python(APPROVE_ONE_EXPIRE_OTHER, calls[0]["approval"], calls[1]["approval"], run=run)

        deadline = time.monotonic() + 60
        observed: dict[str, Any] = {}
        while time.monotonic() < deadline:
            observed = _python(STATE, run=run)
            settled = observed["approvals"][calls[1]["approval"]][0] != "pending"
            delivered = len(observed["deliveries"]) == 2 and all(d[0] == "delivered" for d in observed["deliveries"])
            notified = all(row[2] for row in observed["approvals"].values())
            if settled and delivered and notified:
                break
            time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    output = log.read_text()
    assert observed["approvals"][calls[0]["approval"]][:2] == ["approved", "allow"], (observed, output[-3000:])
    assert observed["approvals"][calls[1]["approval"]][:2] == ["expired", "deny"], (observed, output[-3000:])
    # Two failures (500, 502) somewhere among the two deliveries, each retried by the worker after a
    # delay of at least half of 0.6 s * 2^(attempt - 1) (exponential backoff, full jitter).
    assert all(row[0] == "delivered" for row in observed["deliveries"]), observed
    assert sorted(code for row in observed["deliveries"] for code in row[2]) == [204, 204, 500, 502], observed
    by_delivery: dict[str, list[tuple[int, float]]] = {}
    for at, headers, _ in state.hits:
        by_delivery.setdefault(headers["Warden-Delivery"], []).append((int(headers["Warden-Attempt"]), at))
    gaps_checked = 0
    for hits in by_delivery.values():
        hits.sort()
        for (number, at), (_, later) in itertools.pairwise(hits):
            assert later - at >= 0.5 * 0.6 * 2 ** (number - 1) - 0.05, by_delivery
            gaps_checked += 1
    assert gaps_checked == 2
    from approvals.webhooks import verify_signature

    assert all(verify_signature(seeded["secret"], body, headers["Warden-Signature"]) for _, headers, body in state.hits)
    # The arrival e-mails went out from the worker (console backend in the embedded default).
    assert output.count("Subject: [Warden] Approval needed: payments.transfer by payer") == 2, output[-3000:]
    for action in (
        "approval.requested",
        "approval.notified",
        "approval.decided",
        "approval.expired",
        "webhook.delivered",
    ):
        assert action in observed["actions"]
