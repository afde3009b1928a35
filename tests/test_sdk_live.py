"""The Python SDK against a live Warden: governed functions allowed, denied, escalated to a human who
approves in the queue, failing closed when Warden is down; a tool server verifying the decision token
against the live JWKS; an audit proof fetched from the API and verified offline.

Real HTTP throughout (pytest-django's live server): the SDK has no Django and no mocks here.
Uses the escalating rule of approvals' tests (payments over 1,000 EUR need a human).
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import urllib.request
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission

from approvals.tests.conftest import Escalating, escalating, restore_approvers_group  # noqa: F401  (fixture)
from audit.sealing import seal_pending
from core.groups import APPROVERS, AUDITORS
from policy.models import ToolCall
from policy.tests.builders import VALID_PAYMENT
from policy.tests.conftest import LivePolicy, live_policy  # noqa: F401  (fixture)
from registry.tests.factories import UserFactory
from tests.conftest import E2E_PASSWORD
from warden_sdk import (
    InvalidDecisionToken,
    Result,
    RetryPolicy,
    ToolCallDenied,
    WardenClient,
    WardenUnavailable,
    current_decision,
    fetch_jwks,
    verify_audit_proof,
    verify_decision_token,
)

pytestmark = pytest.mark.django_db(transaction=True)

FAST = RetryPolicy(attempts=2, base_delay=0.05)


def _staff_request(base_url: str, username: str, path: str, body: Any = None) -> Any:
    """A staff user's request with HTTP Basic auth, as an approver's or auditor's script would make it."""
    credentials = base64.b64encode(f"{username}:{E2E_PASSWORD}".encode()).decode()
    request = urllib.request.Request(
        base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_an_allowed_call_runs_and_its_result_and_usage_are_recorded(
    live_server: Any,
    live_policy: LivePolicy,  # noqa: F811
) -> None:
    with WardenClient(live_server.url, live_policy.key, retry=FAST) as client:

        @client.governed("payments.transfer", context={"purpose": "Invoice 2026-118"})
        def transfer(account: str, amount: int, currency: str, reason: str) -> Result:
            return Result({"transfer_id": "t-1", "status": "booked"}, {"input_tokens": 12, "cost": 0.25})

        assert transfer(**{**VALID_PAYMENT, "amount": 500}) == {"transfer_id": "t-1", "status": "booked"}

    call = ToolCall.objects.get()
    assert (call.decision, call.result_status, call.contract_drift) == ("allow", "succeeded", False)
    assert call.output == {"transfer_id": "t-1", "status": "booked"}
    assert call.usage == {"input_tokens": 12, "cost": 0.25}
    assert call.context["purpose"] == "Invoice 2026-118"
    assert call.idempotency_key


def test_a_denied_call_does_not_run_and_carries_wardens_reason_codes(
    live_server: Any,
    live_policy: LivePolicy,  # noqa: F811
) -> None:
    runs: list[int] = []
    with WardenClient(live_server.url, live_policy.key, retry=FAST) as client:

        @client.governed("payments.transfer")
        def transfer(account: str, amount: int, currency: str, reason: str) -> None:
            runs.append(amount)

        with pytest.raises(ToolCallDenied) as raised:
            transfer(**{**VALID_PAYMENT, "amount": 9000})

    assert runs == []
    call = ToolCall.objects.get()
    assert raised.value.decision.id == str(call.pk)
    assert raised.value.reason_codes == tuple(reason["code"] for reason in call.reasons)
    assert raised.value.reason_codes  # Warden says why
    assert call.result_status in ("", None)


def test_an_escalated_call_waits_for_the_approver_then_runs(
    live_server: Any,
    escalating: Escalating,  # noqa: F811
) -> None:
    restore_approvers_group()
    UserFactory(username="sdk-approver", password=E2E_PASSWORD, groups=[APPROVERS])

    def approve_when_queued() -> None:
        """The approver finds the call in the queue and approves it through the approvals API."""
        for _ in range(100):
            pending = _staff_request(live_server.url, "sdk-approver", "/api/v1/approvals?state=pending")["results"]
            if pending:
                _staff_request(
                    live_server.url,
                    "sdk-approver",
                    f"/api/v1/approvals/{pending[0]['id']}/vote",
                    {"verdict": "approve"},
                )
                return
            time.sleep(0.1)

    approver = threading.Thread(target=approve_when_queued, daemon=True)
    approver.start()
    tokens: list[str | None] = []
    with WardenClient(live_server.url, escalating.policy.key, retry=FAST) as client:

        @client.governed("payments.transfer", approval_timeout=20)
        def transfer(account: str, amount: int, currency: str, reason: str) -> dict[str, str]:
            decision = current_decision()
            tokens.append(decision.decision_token if decision else None)
            return {"transfer_id": "t-2", "status": "pending"}

        assert transfer(**{**VALID_PAYMENT, "amount": 2000}) == {"transfer_id": "t-2", "status": "pending"}
    approver.join(timeout=5)

    call = ToolCall.objects.get()
    assert (call.escalated, call.decision, call.result_status) == (True, "allow", "succeeded")
    assert tokens
    assert tokens[0]


def test_the_tool_does_not_run_when_warden_is_down(live_policy: LivePolicy) -> None:  # noqa: F811
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    runs: list[int] = []
    with WardenClient(down, live_policy.key, timeout=1, retry=FAST) as client:

        @client.governed("payments.transfer")
        def transfer(account: str, amount: int, currency: str, reason: str) -> None:
            runs.append(amount)

        with pytest.raises(WardenUnavailable):
            transfer(**{**VALID_PAYMENT, "amount": 500})

    assert runs == []
    assert not ToolCall.objects.exists()


def test_a_tool_server_verifies_the_decision_token_against_the_live_jwks(
    live_server: Any,
    live_policy: LivePolicy,  # noqa: F811
) -> None:
    jwks = fetch_jwks(live_server.url)

    def tool_server_books(token: str | None, arguments: dict[str, Any]) -> str:
        """What the payments service does before it moves money: trust the token, not the agent."""
        assert token is not None
        claims = verify_decision_token(token, jwks, "payments.transfer", arguments)
        return str(claims["jti"])

    payment = {**VALID_PAYMENT, "amount": 700}
    with WardenClient(live_server.url, live_policy.key, retry=FAST) as client:

        @client.governed("payments.transfer")
        def transfer(account: str, amount: int, currency: str, reason: str) -> dict[str, str]:
            decision = current_decision()
            token = decision.decision_token if decision else None
            call_id = tool_server_books(token, payment)
            with pytest.raises(InvalidDecisionToken, match="not the ones"):
                tool_server_books(token, {**payment, "amount": 4900})
            with pytest.raises(InvalidDecisionToken, match="Audience"):
                verify_decision_token(token or "", jwks, "payments.refund", payment)
            return {"transfer_id": call_id, "status": "booked"}

        booked = transfer(**payment)

    assert booked["transfer_id"] == str(ToolCall.objects.get().pk)


def test_an_audit_proof_from_the_live_api_verifies_offline(
    live_server: Any,
    live_policy: LivePolicy,  # noqa: F811
) -> None:
    auditors, _ = Group.objects.get_or_create(name=AUDITORS)
    auditors.permissions.add(*Permission.objects.filter(content_type__app_label="audit", codename__startswith="view_"))
    UserFactory(username="sdk-auditor", password=E2E_PASSWORD, groups=[AUDITORS])
    with WardenClient(live_server.url, live_policy.key, retry=FAST) as client:
        decision = client.authorize("payments.transfer", {**VALID_PAYMENT, "amount": 300})
    seal_pending(everything=True)
    records = _staff_request(live_server.url, "sdk-auditor", f"/api/v1/audit/records?subject_id={decision.id}")
    seq = records["results"][0]["seq"]

    proof = _staff_request(live_server.url, "sdk-auditor", f"/api/v1/audit/records/{seq}/proof")

    verification = verify_audit_proof(proof, block_hash=proof["block"]["block_hash"])
    assert verification.holds, verification.failed
    assert not verify_audit_proof(proof, block_hash="0" * 64).holds
    tampered = {**proof, "record": {**proof["record"], "action": "tool_call.denied"}}
    assert verify_audit_proof(tampered).failed == ("leaf hash", "inclusion in the block's Merkle root")
