"""Webhooks against a real local HTTP receiver: registration, HMAC signatures, retries with backoff,
every attempt recorded, giving up after the configured attempts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from approvals import services, webhooks
from approvals.models import Delivery, DeliveryAttempt, Webhook
from audit.models import AuditRecord

pytestmark = pytest.mark.django_db


@dataclass
class Receiver:
    """A local endpoint answering each POST with the next scripted status (then 200)."""

    url: str
    script: list[int]
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="", script=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers.items()), body))
            status = state.script.pop(0) if state.script else 200
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/warden-hook"
    yield state
    server.shutdown()
    server.server_close()


def _drain(delivery: Delivery) -> None:
    """What the Celery task's retries do, without waiting out the backoff (tests/test_webhook_worker.py
    runs the real thing on a worker): attempt until the delivery is final."""
    while not webhooks.attempt(str(delivery.pk)).final:
        pass


def _register(escalating: Any, url: str) -> dict[str, Any]:
    response = escalating.client().post("/api/v1/webhooks", {"url": url}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_an_agent_registers_a_webhook_and_gets_its_secret_once(escalating, viewer_api):
    registered = _register(escalating, "http://127.0.0.1:9/hook")
    assert registered["secret"].startswith("whsec_")
    webhook = Webhook.objects.get(pk=registered["id"])
    # The secret is derived, not stored.
    assert registered["secret"] not in json.dumps([webhook.url, webhook.nonce])
    assert "secret" not in escalating.client().get(f"/api/v1/webhooks/{webhook.pk}").json()
    assert viewer_api.get("/api/v1/webhooks").json()["count"] == 1
    again = escalating.client().post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/hook"}, format="json")
    assert again.status_code == 409
    assert AuditRecord.objects.filter(action="webhook.registered", subject_id=str(webhook.pk)).count() == 1
    removed = escalating.client().delete(f"/api/v1/webhooks/{webhook.pk}")
    assert removed.status_code == 204
    assert escalating.client().get("/api/v1/webhooks").json()["count"] == 0


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/x", "https://attacker.example/x", "http://169.254.169.254/", ""],
)
def test_a_webhook_must_be_http_to_an_allowed_host(escalating, url):
    response = escalating.client().post("/api/v1/webhooks", {"url": url}, format="json")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"code", "message", "detail"}


def test_only_agents_register_webhooks(admin_api):
    response = admin_api.post("/api/v1/webhooks", {"url": "http://127.0.0.1:9/x"}, format="json")
    assert response.status_code == 403


@override_settings(WARDEN={"WEBHOOK_ALLOWED_HOSTS": [".agents.example.com"]})
def test_allowed_hosts_match_a_domain_and_its_subdomains():
    assert webhooks.host_allowed("agents.example.com")
    assert webhooks.host_allowed("payer.agents.example.com")
    assert not webhooks.host_allowed("evilagents.example.com")
    assert not webhooks.host_allowed("127.0.0.1")


@override_settings(WARDEN={"WEBHOOK_BACKOFF_SECONDS": 2.0, "WEBHOOK_MAX_ATTEMPTS": 8})
def test_a_failing_receiver_is_retried_with_backoff_until_it_answers(
    escalating, approver, receiver, django_capture_on_commit_callbacks
):
    registered = _register(escalating, receiver.url)
    receiver.script = [500, 503]
    document = escalating.ask()
    with django_capture_on_commit_callbacks(execute=True):
        services.vote(approval_id=document["approval"]["id"], user=approver, verdict="approve", comment="ok")
    delivery = Delivery.objects.get()
    assert delivery.attempts == 1  # the task's first attempt, made on commit
    _drain(delivery)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("delivered", 3)
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.number, a.status_code) for a in attempts] == [(1, 500), (2, 503), (3, 200)]
    # Exponential backoff with jitter: the n-th retry waits between half and all of 2 s * 2^(n-1).
    for attempt, ceiling in zip(attempts[:2], (2.0, 4.0), strict=True):
        assert attempt.next_attempt_at is not None
        delay = (attempt.next_attempt_at - attempt.at).total_seconds()
        assert ceiling / 2 <= delay <= ceiling
    assert attempts[2].next_attempt_at is None

    # Every attempt carried the same body, signed with the agent's secret.
    assert len(receiver.received) == 3
    bodies = {body for _, body in receiver.received}
    assert len(bodies) == 1
    headers, body = receiver.received[-1]
    assert webhooks.verify_signature(registered["secret"], body, headers["Warden-Signature"])
    assert not webhooks.verify_signature("whsec_wrong", body, headers["Warden-Signature"])
    assert not webhooks.verify_signature(registered["secret"], body + b" ", headers["Warden-Signature"])
    assert (headers["Warden-Event"], headers["Warden-Delivery"], headers["Warden-Attempt"]) == (
        "approval.settled",
        str(delivery.pk),
        "3",
    )
    event = json.loads(body)
    assert event["tool_call"] == {"id": document["id"], "tool": "payments.transfer", "decision": "allow"}
    assert (event["approval"]["state"], event["approval"]["settled_by"]) == ("approved", "approver")
    assert "decision_token" not in body.decode()  # the agent fetches it with its own key
    assert AuditRecord.objects.filter(action="webhook.delivered").count() == 1


@override_settings(WARDEN={"WEBHOOK_MAX_ATTEMPTS": 3})
def test_a_receiver_that_never_answers_is_given_up_on_and_that_is_recorded(
    escalating, approver, receiver, django_capture_on_commit_callbacks
):
    _register(escalating, receiver.url)
    receiver.script = [500] * 10
    document = escalating.ask()
    with django_capture_on_commit_callbacks(execute=True):
        services.vote(approval_id=document["approval"]["id"], user=approver, verdict="reject", comment="no")
    delivery = Delivery.objects.get()
    _drain(delivery)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("failed", 3)
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 3
    failed = AuditRecord.objects.get(action="webhook.failed")
    assert json.loads(failed.payload)["attempts"] == 3
    assert json.loads(receiver.received[0][1])["tool_call"]["decision"] == "deny"
    assert webhooks.attempt(str(delivery.pk)).final  # a failed delivery is not tried again


def test_an_unreachable_endpoint_is_an_attempt_with_an_error_not_a_crash(escalating, approver):
    registered = _register(escalating, "http://127.0.0.1:9/nothing-listens-here")
    document = escalating.ask()
    services.vote(approval_id=document["approval"]["id"], user=approver, verdict="approve", comment="")
    (delivery_id,) = webhooks.enqueue_settled(document["approval"]["id"])
    result = webhooks.attempt(delivery_id)
    assert (result.delivered, result.final) == (False, False)
    assert result.retry_in is not None
    assert result.retry_in > 0
    attempt = DeliveryAttempt.objects.get(delivery_id=delivery_id)
    assert attempt.status_code is None
    assert "Connection" in attempt.error
    assert registered["id"] == str(Delivery.objects.get(pk=delivery_id).webhook_id)


def test_staff_read_deliveries_with_every_attempt(escalating, approver, receiver, viewer_api):
    registered = _register(escalating, receiver.url)
    document = escalating.ask()
    services.vote(approval_id=document["approval"]["id"], user=approver, verdict="approve", comment="")
    (delivery_id,) = webhooks.enqueue_settled(document["approval"]["id"])
    webhooks.attempt(delivery_id)
    rows = viewer_api.get(f"/api/v1/webhooks/{registered['id']}/deliveries").json()
    assert rows[0]["state"] == "delivered"
    assert rows[0]["attempt_log"][0]["status_code"] == 200
