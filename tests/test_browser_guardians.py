"""Guardians in headless Chromium: an agent reports a tool output carrying an injected instruction
through the real API; the guardian scores it (Celery, after commit) and asks a human; the approver
sees the review with the guardian's scores in the queue and confirms it; the agent is quarantined;
an administrator sees the quarantine and the assessments on the agent and tool-call pages, and
releases the agent with a reason.

Uses the browser, page and screenshot fixtures of test_browser_admin (Debian's Chromium).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from approvals.choices import ApprovalKind
from approvals.models import Approval
from guardian.models import Assessment, Quarantine
from guardian.tests.conftest import INJECTED, Fleet, fleet  # noqa: F401  (fixture)
from registry.choices import AgentStatus
from registry.models import Agent
from tests.test_browser_admin import _login, _stylesheets_applied, browser, page, screenshots  # noqa: F401
from tests.test_browser_approvals import _api, e2e_approver  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_review_is_confirmed_in_the_queue_and_the_quarantine_shown_and_released(
    page: Any,  # noqa: F811
    live_server: Any,
    fleet: Fleet,  # noqa: F811
    e2e_approver: Any,  # noqa: F811
    e2e_superuser: Any,
    screenshots: Path,  # noqa: F811
) -> None:
    fleet.configure(quarantine_threshold=1.0)  # escalations become reviews; only a human quarantines
    status, document = _api(
        live_server.url,
        fleet.keys["mailer"],
        "/api/v1/tool-calls",
        {"tool": "docs.read", "arguments": {"path": "/reviews"}, "context": {"purpose": "Summarise the reviews."}},
    )
    assert (status, document["decision"]) == (200, "allow"), document
    call_id = document["id"]
    status, _ = _api(
        live_server.url,
        fleet.keys["mailer"],
        f"/api/v1/tool-calls/{call_id}/result",
        {"status": "succeeded", "output": {"reviews": [INJECTED]}},
    )
    assert status == 200
    review = Approval.objects.get(tool_call_id=call_id, kind=ApprovalKind.REVIEW)

    # The approver finds the review in the queue, with what the guardian found.
    _login(page, e2e_approver.username)
    page.goto("/approvals/")
    assert _stylesheets_applied(page)
    card = page.locator(f"#approval-{review.pk}")
    assert card.locator(".wd-kind-review").inner_text().lower() == "review"
    assert "This call already ran" in card.locator(".wd-review-note").inner_text()
    assert "guardian_escalated" in card.locator(".wd-reasons").inner_text()
    scores = card.locator(".wd-score-table")
    assert "tool output" in scores.inner_text()
    assert scores.locator(".wd-score-escalate").count() == 1
    page.screenshot(path=screenshots / "40_guardian-review-in-queue.png", full_page=True)

    # Reject = confirm: the agent is quarantined.
    card.get_by_label("Comment").fill("The output told it to mail the customer list; it must stop.")
    card.get_by_role("button", name="Reject").click()
    page.wait_for_url("**/approvals/")
    assert Agent.objects.get(pk=fleet.mailer.pk).status == AgentStatus.QUARANTINED

    # The administrator sees the quarantine and the assessments on the agent page ...
    page.context.clear_cookies()
    _login(page, e2e_superuser.username)
    page.goto(f"/admin/registry/agent/{fleet.mailer.pk}/change/")
    panel = page.locator("#guardian-panel")
    assert "Quarantined" in panel.locator(".wd-quarantine").inner_text()
    assert "Review confirmed the guardians' concern" in panel.inner_text()
    assert panel.locator(".wd-score-escalate").count() == 1
    page.screenshot(path=screenshots / "41_guardian-agent-quarantined.png", full_page=True)

    # ... and on the tool call's page, each assessment with its scorers.
    page.goto(f"/admin/policy/toolcall/{call_id}/change/")
    inline = page.locator("#assessments-group")
    assert "sentinel" in inline.inner_text().lower()
    assert "injected_instruction" in inline.inner_text()
    assert "content" in inline.inner_text()
    page.screenshot(path=screenshots / "42_guardian-tool-call-assessments.png", full_page=True)

    # Release, with a reason: the agent acts again and the quarantine is closed with who and why.
    page.goto(f"/admin/registry/agent/{fleet.mailer.pk}/change/")
    page.locator(".wd-actions a", has_text="Activate").click()
    page.fill("#id_reason", "Prompt hardened; replayed the inbox in staging without incident.")
    page.locator("input[type=submit]").click()
    page.wait_for_url(f"**/admin/registry/agent/{fleet.mailer.pk}/change/")
    assert "Last quarantine" in page.locator("#guardian-panel").inner_text()
    page.screenshot(path=screenshots / "43_guardian-released.png", full_page=True)
    quarantine = Quarantine.objects.get(agent=fleet.mailer)
    assert (quarantine.is_open, quarantine.released_by, quarantine.release_reason) == (
        False,
        e2e_superuser,
        "Prompt hardened; replayed the inbox in staging without incident.",
    )
    assert Agent.objects.get(pk=fleet.mailer.pk).status == AgentStatus.ACTIVE
    assert Assessment.objects.filter(tool_call_id=call_id).count() == 2
