"""The policy admin in headless Chromium: a contract with its hardening report, a rule refused for
a CEL syntax error and then saved, and the decision it causes in the tool-call record.

Uses the browser, page and screenshot fixtures of test_browser_admin (Debian's Chromium).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.actors import Actor
from policy import decisions, services
from policy.models import Rule
from tests.conftest import SeededRegistry
from tests.test_browser_admin import _login, _stylesheets_applied, browser, page, screenshots  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WEAK_SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "number"}, "currency": {"type": "string"}, "memo": {"type": "string"}},
}


def test_contract_rule_and_the_decision_it_causes(
    page: Any,  # noqa: F811
    e2e_superuser: Any,
    seeded_registry: SeededRegistry,
    screenshots: Path,  # noqa: F811
) -> None:
    actor = Actor.system("browser-test")
    services.contract_create(actor=actor, tool="payments.transfer", input_schema=WEAK_SCHEMA, activate=True)
    _login(page, e2e_superuser.username)

    # The contract list and the active version: pretty-printed schema, hardening findings, read-only.
    page.goto("/admin/policy/contractversion/")
    assert page.locator("#result_list tbody tr").count() == 1
    assert "4 finding(s)" in page.locator("#result_list").inner_text()  # open object, no required, 2 strings
    page.click("#result_list tbody tr th a")
    page.wait_for_url("**/admin/policy/contractversion/*/change/")
    assert _stylesheets_applied(page)
    findings = page.locator(".wd-findings li")
    assert findings.count() == 4
    assert "additionalProperties: false" in findings.first.inner_text()
    assert page.locator("pre.wd-schema").first.inner_text().startswith("{\n")
    assert page.locator("textarea[name=input_schema]").count() == 0  # active: immutable
    page.screenshot(path=screenshots / "10-contract-active.png", full_page=True)

    # A rule with a syntax error is refused with its position; fixed, it saves.
    page.goto("/admin/policy/rule/add/")
    page.fill("#id_name", "Large transfers need a human")
    page.fill("#id_expression", "args.amount >")
    page.select_option("#id_effect", "escalate")
    page.select_option("#id_scope", "tool")
    page.select_option("#id_scope_tool", "payments.transfer")
    page.click("input[name=_save]")
    error = page.locator(".field-expression .errorlist")
    assert "line 1, column" in error.inner_text()
    page.screenshot(path=screenshots / "11-rule-syntax-error.png", full_page=True)
    page.fill("#id_expression", "args.amount > 500")
    page.fill("#id_message", "Transfers over 500 need approval.")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/policy/rule/")
    assert Rule.objects.get().expression == "args.amount > 500"
    page.screenshot(path=screenshots / "12-rules.png", full_page=True)

    # The rule applies to the next call, which the tool-call record shows.
    credential = next(c for c in seeded_registry.credentials if c.agent.slug == "invoice-bot")
    principal = decisions.AgentPrincipal(agent_id=str(credential.agent_id), prefix=credential.prefix)
    call = decisions.decide_call(
        principal, decisions.CallRequest(tool="payments.transfer", arguments={"amount": 900, "currency": "EUR"})
    )
    assert call.decision == "escalate"
    page.goto("/admin/policy/toolcall/")
    row = page.locator("#result_list tbody tr").first
    assert "rule_escalated" in row.inner_text()
    page.screenshot(path=screenshots / "13-tool-calls.png", full_page=True)
    page.click("#result_list tbody tr th a")
    page.wait_for_url("**/admin/policy/toolcall/*/change/")
    page.locator("pre.wd-schema", has_text="Transfers over 500 need approval.").wait_for()  # waits for the page
    page.screenshot(path=screenshots / "14-tool-call.png", full_page=True)
