"""The approval queue in headless Chromium: an agent's call escalates through the real API, the agent
long-polls for the outcome, an approver logs in, approves it from the queue with a comment, and
the agent's poll returns `allow` with a decision token that verifies for those exact arguments.
Then the decided tab, a rejection refused for want of a comment (fixed in place), and the queue
in the dark theme.

Uses the browser, page and screenshot fixtures of test_browser_admin (Debian's Chromium) and
the escalating rule of approvals' tests (payments over 1,000 EUR need a human).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from approvals import services
from approvals.choices import ApprovalState
from approvals.models import Approval
from approvals.tests.conftest import Escalating, escalating, restore_approvers_group  # noqa: F401  (fixture)
from core.groups import APPROVERS
from policy import services as policy_services
from policy import tokens
from policy.models import ToolCall
from policy.tests.builders import VALID_PAYMENT
from policy.tests.conftest import live_policy  # noqa: F401  (fixture)
from registry.tests.factories import UserFactory
from tests.conftest import E2E_PASSWORD
from tests.test_browser_admin import _login, _stylesheets_applied, browser, page, screenshots  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAYMENT = {**VALID_PAYMENT, "amount": 2000, "reason": "Invoice 2026-118, Acme GmbH"}


@pytest.fixture
def e2e_approver(transactional_db: None) -> Any:
    """A staff user in approvers with a password for the login form.

    Transactional tests flush the tables between tests, and with them the groups the migrations
    made; the group gets back what approvals' migration gives it (view on every approvals model,
    and the permission to decide).
    """
    restore_approvers_group()
    return UserFactory(
        username="e2e-approver", first_name="Erin", last_name="Approver", password=E2E_PASSWORD, groups=[APPROVERS]
    )


def _api(base_url: str, key: str, path: str, body: Any = None, timeout: float = 10) -> tuple[int, dict[str, Any]]:
    """What an agent does: one HTTP request with its key, against the live server."""
    request = urllib.request.Request(
        base_url + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Accept": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def _ask(live_server: Any, escalating: Escalating, arguments: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    status, document = _api(
        live_server.url,
        escalating.policy.key,
        "/api/v1/tool-calls",
        {"tool": "payments.transfer", "arguments": arguments},
    )
    assert status == 200, document
    assert document["decision"] == "escalate", document
    assert document["approval"]["state"] == "pending"
    return document


def test_an_approver_approves_from_the_queue_and_the_waiting_agent_gets_its_token(
    page: Any,  # noqa: F811
    live_server: Any,
    escalating: Escalating,  # noqa: F811
    e2e_approver: Any,
    screenshots: Path,  # noqa: F811
) -> None:
    document = _ask(live_server, escalating, PAYMENT)
    call_id, approval_id = document["id"], document["approval"]["id"]

    # The agent waits for a human (a long poll of up to 20 s) while the approver works.
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        answer["status"], answer["document"] = _api(
            live_server.url, escalating.policy.key, f"/api/v1/tool-calls/{call_id}?wait=20", timeout=40
        )

    poller = threading.Thread(target=long_poll, daemon=True)
    poller.start()

    # The approver logs in; the navigation badge counts one item and leads to the queue.
    _login(page, e2e_approver.username)
    assert page.locator("#approvals-badge").inner_text() == "1"
    page.click("#user-tools a.wd-approvals-link")
    page.wait_for_url("**/approvals/")
    assert _stylesheets_applied(page)
    assert page.evaluate(
        "() => [...document.styleSheets].some(s => (s.href || '').endsWith('/approvals/approvals.css'))"
    )
    assert page.title() == "Approvals (1 pending) | Warden"
    card = page.locator(f"#approval-{approval_id}")
    assert card.locator("code.wd-tool").inner_text() == "payments.transfer"
    assert card.locator(".wd-agent-slug").inner_text() == "payer"
    assert '"amount": 2000' in card.locator("pre.wd-args").inner_text()
    assert "Payments over 1,000 EUR need a human." in card.locator(".wd-reasons").inner_text()
    assert "0 of 1 approval" in card.locator(".wd-progress-text").inner_text()
    assert card.locator(".wd-due-rel").inner_text().startswith("Due in ")
    page.screenshot(path=screenshots / "30_approvals-queue.png", full_page=True)

    # A comment, then Approve: the page comes back with a message and an empty queue.
    card.get_by_label("Comment").fill("Checked the invoice against the purchase order.")
    card.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/approvals/")
    success = page.locator(".messagelist .success")
    success.wait_for()
    assert success.inner_text().startswith("Approved: payments.transfer by payer")
    assert page.locator("article.wd-approval").count() == 0
    assert page.locator("#approvals-badge").inner_text() == "0"
    assert page.title() == "Approvals (0 pending) | Warden"
    page.screenshot(path=screenshots / "31_approvals-approved.png", full_page=True)

    # The agent's long poll returned as soon as it was decided: allow, with a token for these arguments.
    poller.join(timeout=30)
    assert not poller.is_alive()
    assert answer["status"] == 200, answer
    decided = answer["document"]
    assert (decided["decision"], decided["approval"]["state"], decided["approval"]["settled_by"]) == (
        "allow",
        "approved",
        e2e_approver.username,
    )
    claims = tokens.verify(decided["decision_token"], tool="payments.transfer", arguments=PAYMENT)
    assert claims["jti"] == call_id
    assert ToolCall.objects.get(pk=call_id).decision == "allow"
    approval = Approval.objects.get(pk=approval_id)
    assert (approval.state, approval.comment) == (
        ApprovalState.APPROVED,
        "Checked the invoice against the purchase order.",
    )

    # The decided tab says who decided, when and why.
    page.click("#tab-decided")
    page.wait_for_url("**/approvals/?state=decided*")
    row = page.locator(f"#decided-{approval_id}")
    assert row.locator(".wd-state").inner_text().lower() == "approved"
    assert row.locator(".wd-who").inner_text() == e2e_approver.username
    assert "Checked the invoice" in row.locator(".wd-why-cell").inner_text()
    page.screenshot(path=screenshots / "32_approvals-decided.png", full_page=True)


def test_a_rejection_needs_a_comment_and_the_queue_reads_well_in_the_dark(
    page: Any,  # noqa: F811
    live_server: Any,
    escalating: Escalating,  # noqa: F811
    e2e_approver: Any,
    screenshots: Path,  # noqa: F811
) -> None:
    first = _ask(live_server, escalating, PAYMENT)
    # The second needs two approvers; one has approved already.
    policy_services.rule_update(actor=escalating.policy.actor, rule=escalating.rule, required_approvals=2)
    second = _ask(live_server, escalating, {**PAYMENT, "amount": 4800, "account": "GB29NWBK60161331926819"})
    colleague = UserFactory(username="second-approver", groups=[APPROVERS])
    services.vote(approval_id=second["approval"]["id"], user=colleague, verdict="approve", comment="Matches PO 4471.")
    _login(page, e2e_approver.username)
    page.goto("/approvals/")
    assert page.locator("article.wd-approval").count() == 2
    assert page.locator("#approvals-badge").inner_text() == "2"

    # Reject without saying why: refused beside the field, nothing recorded.
    card = page.locator(f"#approval-{first['approval']['id']}")
    card.get_by_role("button", name="Reject").click()
    page.wait_for_url(f"**/approvals/{first['approval']['id']}/vote")
    error = page.locator(".wd-field-error")
    assert error.inner_text() == "Say why: a rejection needs a comment."
    comment = page.get_by_label("Comment")
    assert comment.get_attribute("aria-invalid") == "true"
    assert Approval.objects.get(pk=first["approval"]["id"]).state == ApprovalState.PENDING
    page.screenshot(path=screenshots / "33_approvals-reject-needs-comment.png", full_page=True)

    # Fixed in place: the rejection goes through, back on the queue the person started from.
    comment.fill("Not one of our suppliers.")
    page.get_by_role("button", name="Reject").click()
    page.wait_for_url("**/approvals/")
    assert page.locator(".messagelist .success").inner_text().startswith("Rejected: payments.transfer by payer")
    assert page.locator("article.wd-approval").count() == 1
    assert ToolCall.objects.get(pk=first["id"]).decision == "deny"
    page.goto(f"/approvals/{first['approval']['id']}/")
    assert "Rejected by e2e-approver" in page.locator(".wd-settled").inner_text()

    # The queue in the dark theme (the admin follows the system's preference by default).
    page.emulate_media(color_scheme="dark")
    page.goto("/approvals/")
    assert page.locator("article.wd-approval").count() == 1
    card = page.locator(f"#approval-{second['approval']['id']}")
    assert "1 of 2 approvals" in card.locator(".wd-progress-text").inner_text()
    assert "1 more approval needed" in card.locator(".wd-still-needed").inner_text()
    assert "Matches PO 4471." in card.locator(".wd-votes").inner_text()
    background = page.locator(f"#approval-{second['approval']['id']} pre.wd-args").evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    assert background == "rgb(26, 29, 33)"  # --wd-code-bg of the dark theme
    page.screenshot(path=screenshots / "34_approvals-dark.png", full_page=True)
