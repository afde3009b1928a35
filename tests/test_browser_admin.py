"""The admin in a real headless Chromium: register an agent, activate it, issue a key, read its card.

One browser per module (Debian's Chromium, driven by Playwright's sync API; never a downloaded
browser). Screenshots of each page land in var/artifacts/screenshots/ for people to look at.
Without /usr/bin/chromium the tests skip, unless WARDEN_REQUIRE_BROWSER=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from registry import services
from registry.choices import AgentStatus, ChangeAction
from registry.models import Agent, ChangeRecord, Grant
from tests.conftest import E2E_PASSWORD, SeededRegistry

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("known_tools")]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the whole module."""
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if os.environ.get("WARDEN_REQUIRE_BROWSER") == "1":
            pytest.fail(f"WARDEN_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread; Django would otherwise
    # refuse ORM calls made by the test itself (SynchronousOnlyOperation).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Any, live_server: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) with a desktop-sized window."""
    context = browser.new_context(viewport={"width": 1366, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def screenshots(artifacts_dir: Path) -> Path:
    directory = artifacts_dir / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _login(page: Any, username: str) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", E2E_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")
    assert page.locator("#user-tools").is_visible()


def _stylesheets_applied(page: Any) -> bool:
    """Django's admin CSS and Warden's own both loaded (the header is styled, badges are pills)."""
    return bool(
        page.evaluate(
            """() => [...document.styleSheets].some(s => (s.href || '').endsWith('/admin/css/base.css'))
                 && [...document.styleSheets].some(s => (s.href || '').endsWith('/warden/admin.css'))"""
        )
    )


def test_register_activate_issue_key_and_read_card(
    page: Any, e2e_superuser: Any, seeded_registry: SeededRegistry, screenshots: Path
) -> None:
    owner = seeded_registry.owner
    clerk = seeded_registry.roles[0]
    _login(page, e2e_superuser.username)

    # The fleet: the seeded agents with their status and risk badges.
    page.get_by_role("link", name="Agents", exact=True).click()
    page.wait_for_url("**/admin/registry/agent/")
    assert page.locator("#result_list tbody tr").count() == len(seeded_registry.agents)
    assert page.locator(".wd-badge.wd-status-active").count() >= 1
    assert page.locator(".wd-badge.wd-risk-critical").count() == 1
    assert _stylesheets_applied(page)
    badge = page.locator(".wd-badge.wd-status-active").first
    assert badge.evaluate("el => getComputedStyle(el).borderRadius") == "10px"
    page.screenshot(path=screenshots / "01-agents-list.png", full_page=True)

    # Register a new agent with one grant of its own.
    page.get_by_role("link", name="Add agent").click()
    page.wait_for_url("**/admin/registry/agent/add/")
    page.locator("#id_name").press_sequentially("Refund bot")  # typed: the slug follows key by key
    assert page.input_value("#id_slug") == "refund-bot"
    page.select_option("#id_owner", label=owner.username)
    page.select_option("#id_role", label=clerk.name)
    page.fill("#id_model_name", "granite-3.1-2b")
    page.select_option("#id_risk_tier", "high")
    page.click("#grants-group .add-row a")
    page.select_option("#id_grants-0-tool", "payments.transfer")
    page.fill("#id_grants-0-constraints", '{"amount": {"maximum": 250}}')
    page.fill("#id_grants-0-reason", "Refunds customers for failed orders.")
    page.screenshot(path=screenshots / "02-agent-add.png", full_page=True)
    page.click("input[name=_continue]")
    page.wait_for_url("**/admin/registry/agent/*/change/")
    assert page.locator(".messagelist .success").count() == 1, page.locator(".errornote, .errorlist").all_inner_texts()

    agent_id = urlsplit(page.url).path.rstrip("/").split("/")[-2]
    agent = Agent.objects.get(pk=agent_id)
    assert (agent.slug, agent.status, agent.owner, agent.role) == ("refund-bot", AgentStatus.DRAFT, owner, clerk)
    grant = Grant.objects.get(agent=agent)
    assert (grant.tool_id, grant.constraints, grant.granted_by) == (
        "payments.transfer",
        {"amount": {"maximum": 250}},
        e2e_superuser,
    )

    # Activate it, through the confirmation page.
    page.click(".wd-actions a:text-is('Activate')")
    page.wait_for_url(f"**/admin/registry/agent/{agent_id}/status/active/")
    page.click("input[type=submit][value=Activate]")
    page.wait_for_url(f"**/admin/registry/agent/{agent_id}/change/")
    assert page.locator(".wd-summary .wd-status-active").is_visible()
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ACTIVE
    page.screenshot(path=screenshots / "03-agent-active.png", full_page=True)

    # Issue a key: shown once, and it works.
    page.click(".wd-actions a:text-is('Issue key')")
    page.wait_for_url(f"**/admin/registry/agent/{agent_id}/issue-key/")
    page.fill("#id_name", "production")
    page.click("input[type=submit][value='Issue key']")
    key = page.locator("#issued-key").inner_text().strip()
    assert key.startswith("wdn_")
    page.screenshot(path=screenshots / "04-key-issued.png", full_page=True)
    credential = services.credential_authenticate(key)
    assert credential.agent_id == agent.pk
    assert credential.name == "production"
    assert credential.created_by == e2e_superuser

    # Every step was recorded with the human who took it.
    actions = set(
        ChangeRecord.objects.filter(agent=agent, actor_label=e2e_superuser.username).values_list("action", flat=True)
    )
    assert {
        ChangeAction.AGENT_CREATED,
        ChangeAction.GRANT_ADDED,
        ChangeAction.AGENT_STATUS_CHANGED,
        ChangeAction.CREDENTIAL_ISSUED,
    } <= actions

    # The agent card, in the same logged-in session (the admin links to it).
    page.goto(f"/admin/registry/agent/{agent_id}/change/")
    page.click(".wd-actions a:text-is('Agent card (JSON)')")
    page.wait_for_url(f"**/api/v1/agents/{agent_id}/card")
    page.screenshot(path=screenshots / "05-agent-card-browsable.png", full_page=True)
    response = page.goto(f"/api/v1/agents/{agent_id}/card?format=json")
    assert response.status == 200
    card = json.loads(response.text())
    assert card["name"] == "Refund bot"
    (extension,) = card["capabilities"]["extensions"]
    assert extension["uri"].endswith("/governance/v1")
    warden = extension["params"]
    assert (warden["slug"], warden["status"], warden["risk_tier"]) == ("refund-bot", "active", "high")
    assert warden["owner"]["username"] == owner.username
    assert warden["role"] == {"slug": clerk.slug, "name": clerk.name}
    assert {(item["tool"], item["granted_via"]) for item in warden["authority"]} == {
        ("payments.transfer", "agent"),
        ("payments.transfer", "role"),
    }


def test_api_docs_render_without_leaving_the_server(
    page: Any, e2e_superuser: Any, live_server: Any, screenshots: Path
) -> None:
    """The Swagger UI draws every operation from local static files; nothing is fetched elsewhere."""
    own_origin = urlsplit(live_server.url).netloc
    elsewhere: list[str] = []
    page.on(
        "request",
        lambda request: (
            elsewhere.append(request.url)
            if urlsplit(request.url).scheme in {"http", "https"} and urlsplit(request.url).netloc != own_origin
            else None
        ),
    )
    _login(page, e2e_superuser.username)
    page.goto("/api/docs/")
    page.wait_for_selector(".opblock")
    assert page.locator(".opblock").count() >= 20
    assert "Warden API" in page.locator(".info .title").inner_text()
    page.screenshot(path=screenshots / "06-api-docs.png", full_page=True)
    assert not elsewhere, f"the docs page fetched from other hosts: {elsewhere}"
