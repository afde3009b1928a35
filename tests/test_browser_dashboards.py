"""The fleet dashboards in headless Chromium, fed by agents through the real API.

A viewer opens the overview (charts drawn by Chart.js, figures from the rollups) and watches a
new decision arrive without reloading (htmx); the feed gains a row on top by itself; the filters
narrow it; the tool-call page shows an injected output's guardian scores; the sprawl report
names what nobody uses. An administrator quarantines an agent from its page and releases it.
Screenshots land in the test artifacts (50_* to 55_*).

Uses the browser, page and screenshot fixtures of test_browser_admin (Debian's Chromium).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from core.groups import VIEWERS
from guardian.tests.conftest import INJECTED, Fleet, fleet  # noqa: F401  (fixture)
from registry.choices import AgentStatus
from registry.models import Agent
from telemetry import rollups
from tests.conftest import E2E_PASSWORD
from tests.test_browser_admin import _login, _stylesheets_applied, browser, page, screenshots  # noqa: F401
from tests.test_browser_approvals import _api

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALLOWED_ON_CHART = (
    "Chart.getChart(document.getElementById('chart-outcomes')).data.datasets[0].data.reduce((a, b) => a + b)"
)
LIVE_WAIT_MS = 15_000  # the pages poll every second here; generous for a loaded CI machine


@pytest.fixture
def e2e_viewer(transactional_db: None) -> Any:
    """A staff user in viewers with a password for the login form.

    Transactional tests flush the tables between tests, and with them the groups the migrations
    made; the group gets back what the migrations give it (view on every registry, policy,
    approvals and guardian model).
    """
    group, _ = Group.objects.get_or_create(name=VIEWERS)
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=("registry", "policy", "approvals", "guardian"), codename__startswith="view_"
        )
    )
    user = get_user_model().objects.create_user(username="e2e-viewer", password=E2E_PASSWORD, is_staff=True)
    user.groups.add(group)
    return user


@pytest.fixture
def fast_refresh(settings: Any) -> None:
    settings.WARDEN = {**settings.WARDEN, "DASHBOARD_REFRESH_SECONDS": 1}


def _decide(live_server: Any, fleet: Fleet, slug: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    status, document = _api(
        live_server.url, fleet.keys[slug], "/api/v1/tool-calls", {"tool": tool, "arguments": arguments}
    )
    assert status == 200, document
    return document


def test_a_viewer_watches_the_fleet_live(
    page: Any,  # noqa: F811
    live_server: Any,
    fleet: Fleet,  # noqa: F811
    e2e_viewer: Any,
    fast_refresh: None,
    screenshots: Path,  # noqa: F811
) -> None:
    read = _decide(live_server, fleet, "assistant", "docs.read", {"path": "/reviews"})
    status, _ = _api(
        live_server.url,
        fleet.keys["assistant"],
        f"/api/v1/tool-calls/{read['id']}/result",
        {"status": "succeeded", "output": {"reviews": [INJECTED]}, "usage": {"cost": 0.02}},
    )
    assert status == 200
    for index in range(3):
        _decide(live_server, fleet, "mailer", "docs.read", {"path": f"/notes/{index}"})
    _decide(live_server, fleet, "mailer", "docs.read", {"path": 42})  # schema violation: denied
    _decide(live_server, fleet, "assistant", "docs.read", {"path": "/more"})  # the guardian quarantined it: denied
    rollups.roll_up()

    _login(page, e2e_viewer.username)
    page.goto("/fleet/")
    assert _stylesheets_applied(page)
    assert page.locator("#kpi-decisions").inner_text() == "6"
    assert page.locator("#kpi-deny").inner_text() == "33%"
    assert (
        page.evaluate(
            "Chart.getChart(document.getElementById('chart-outcomes')).data.datasets[0].data.reduce((a, b) => a + b, 0)"
        )
        == 4
    )
    attention = page.locator("#attention").inner_text()
    assert "assistant" in attention
    assert "flagged by guardians" in attention
    assert "docs.read" in page.locator("#top-tools").inner_text()
    assert "quarantined" in attention
    assert "agent_not_active" in page.locator("#top-reasons").inner_text()
    page.screenshot(path=screenshots / "50_fleet-overview.png", full_page=True)

    # A new decision shows up without a reload: the live tail is read from the source.
    page.evaluate("window.__sameDocument = true")
    _decide(live_server, fleet, "orchestrator", "docs.read", {"path": "/plan"})
    page.wait_for_function("document.getElementById('kpi-decisions').innerText === '7'", timeout=LIVE_WAIT_MS)
    page.wait_for_function(f"{ALLOWED_ON_CHART} === 5", timeout=LIVE_WAIT_MS)
    assert page.evaluate("window.__sameDocument") is True

    # The feed: newest first, new rows arrive on top by themselves.
    page.goto("/fleet/feed/")
    rows = page.locator("#feed-rows tr")
    assert rows.count() == 7
    page.evaluate("window.__sameDocument = true")
    _decide(live_server, fleet, "mailer", "docs.read", {"path": "/live"})
    page.wait_for_function("document.querySelectorAll('#feed-rows tr').length === 8", timeout=LIVE_WAIT_MS)
    assert "mailer" in rows.first.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=screenshots / "51_decision-feed.png", full_page=True)

    page.select_option("#id_outcome", "deny")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/fleet/feed/?*outcome=deny*")
    assert rows.count() == 2
    assert "schema_violation" in page.locator("#feed-rows").inner_text()

    # One call, whole: the injected output and what the guardian found.
    page.goto(f"/fleet/calls/{read['id']}/")
    assert "Guardian scores" in page.content()
    assert "sentinel" in page.locator("#scores-title + p").inner_text()
    assert page.locator("#call-result").inner_text() == "succeeded"
    assert "tool_call.decided" in page.locator("#call-audit").inner_text()
    page.screenshot(path=screenshots / "52_tool-call.png", full_page=True)

    # The agent page: a viewer sees the timeline and the history but no circuit breaker.
    page.goto("/fleet/agents/assistant/")
    assert page.locator("#quarantine-form").count() == 0
    assert "docs.read" in page.locator("#authority").inner_text()
    assert page.locator("#recent-calls-rows tr").count() == 2
    page.screenshot(path=screenshots / "53_agent-page.png", full_page=True)

    page.goto("/fleet/sprawl/")
    unused = page.locator("#sprawl-unused").inner_text()
    assert "email.send" in unused  # granted to every agent, used by none
    assert "orchestrator" in unused
    page.screenshot(path=screenshots / "54_sprawl-report.png", full_page=True)


def test_an_administrator_quarantines_and_releases_from_the_agent_page(
    page: Any,  # noqa: F811
    live_server: Any,
    fleet: Fleet,  # noqa: F811
    e2e_superuser: Any,
    screenshots: Path,  # noqa: F811
) -> None:
    _login(page, e2e_superuser.username)
    page.goto("/fleet/agents/mailer/")
    page.fill("#id_quarantine_reason", "It mailed a customer list to an unknown address.")
    page.locator("#quarantine-form").get_by_role("button", name="Quarantine").click()
    page.wait_for_url("**/fleet/agents/mailer/")
    assert page.locator("#agent-status").inner_text().lower() == "quarantined"
    assert "It mailed a customer list" in page.locator(".wd-alert").inner_text()
    assert Agent.objects.get(slug="mailer").status == AgentStatus.QUARANTINED
    # Containment: the supervisor's own calls are fine, the quarantined agent's are not.
    blocked = _decide(live_server, fleet, "mailer", "docs.read", {"path": "/x"})
    assert blocked["decision"] == "deny"
    page.screenshot(path=screenshots / "55_agent-quarantined.png", full_page=True)

    page.fill("#id_release_reason", "Owner rotated its key and fixed the prompt.")
    page.locator("#release-form").get_by_role("button", name="Release").click()
    page.wait_for_url("**/fleet/agents/mailer/")
    assert page.locator("#agent-status").inner_text().lower() == "active"
    assert Agent.objects.get(slug="mailer").status == AgentStatus.ACTIVE
