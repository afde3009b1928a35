"""The fleet dashboards through Django's test client: who may see them, what they show, the live
fragments htmx asks for, the feed's filters and cursors, quarantine and release, and query-count
guards that hold each page to the same handful of queries however many calls there are."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from audit.models import AuditRecord
from core.actors import Actor
from guardian.models import Quarantine
from policy import services as policy_services
from policy.models import ToolCall
from policy.tests.builders import VALID_PAYMENT
from registry import services as registry_services
from registry.choices import AgentStatus
from registry.models import Agent, Credential
from registry.tests.factories import AgentFactory, RoleFactory, ToolFactory
from telemetry import rollups
from telemetry.tests.conftest import ask, report

pytestmark = pytest.mark.django_db

PAGES = ("/fleet/", "/fleet/feed/", "/fleet/sprawl/", "/fleet/agents/payer/")
HTMX = {"HTTP_HX_REQUEST": "true"}


def page_of(client, url: str, **headers) -> str:
    response = client.get(url, **headers)
    assert response.status_code == 200, (url, response.status_code, response.content[:500])
    return response.content.decode()


@pytest.fixture
def watched(traffic, viewer, client):
    client.force_login(viewer)
    return traffic


@pytest.mark.parametrize("url", PAGES)
def test_pages_need_a_login_and_the_view_permission(url, live_policy, client, groupless_user, non_staff_user):
    response = client.get(url)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    client.force_login(groupless_user)
    assert client.get(url).status_code == 403
    client.force_login(non_staff_user)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("user", ["viewer", "auditor", "approver", "warden_admin"])
def test_every_watcher_sees_every_page(user, request, traffic, client):
    client.force_login(request.getfixturevalue(user))
    for url in PAGES:
        page_of(client, url)
    call = ToolCall.objects.first()
    assert call is not None
    page_of(client, f"/fleet/calls/{call.pk}/")


def test_overview_shows_the_window_and_the_live_fragment_carries_the_tables(watched, client):
    html = page_of(client, "/fleet/")
    assert re.search(r'id="kpi-decisions">6<', html)
    assert re.search(r'id="kpi-deny">33%<', html)  # 2 of 6
    assert 'id="overview-series"' in html
    assert "payments.transfer" in html
    assert "rule_escalated" in html
    assert 'src="/static/vendor/htmx.min.js"' in html
    assert 'src="/static/vendor/chart.umd.min.js"' in html
    ask(watched, {**VALID_PAYMENT, "amount": 50})
    fragment = page_of(client, "/fleet/?window=15m", **HTMX)
    assert fragment.lstrip().startswith('<div id="overview-live"')
    assert re.search(r'id="kpi-decisions">7<', fragment)
    assert 'id="overview-tables" class="wd-grid" hx-swap-oob="true"' in fragment
    assert "<html" not in fragment


def test_overview_ranks_agents_needing_attention_with_reasons(watched, client, actor):
    noisy = AgentFactory(slug="noisy", status=AgentStatus.ACTIVE)
    for _ in range(5):
        ask_as(noisy, "payments.transfer")  # no grant: denied
    registry_services.agent_transition(
        actor=actor, agent=AgentFactory(slug="boxed", status=AgentStatus.ACTIVE), to="quarantined", reason="Test."
    )
    html = page_of(client, "/fleet/")
    attention = html[html.index('id="attention"') :]
    assert attention.index("boxed") < attention.index("noisy")
    assert "quarantined" in attention
    assert "100% of 5 calls denied" in attention
    assert "1 approval(s) waiting for a human" in attention  # payer's escalation


def ask_as(agent: Agent, tool: str) -> None:
    from rest_framework.test import APIClient

    key = registry_services.credential_issue(actor=Actor.system("test"), agent=agent).key
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert api.post("/api/v1/tool-calls", {"tool": tool, "arguments": {}}, format="json").status_code == 200


def test_feed_filters_by_agent_tool_outcome_and_reason(watched, client):
    assert html_rows(page_of(client, "/fleet/feed/")) == 6
    assert html_rows(page_of(client, "/fleet/feed/?outcome=deny")) == 2
    assert html_rows(page_of(client, "/fleet/feed/?outcome=escalate")) == 1
    assert html_rows(page_of(client, "/fleet/feed/?reason=limit_exceeded")) == 1
    assert html_rows(page_of(client, "/fleet/feed/?agent=payer&tool=payments.transfer&outcome=allow")) == 3
    assert html_rows(page_of(client, "/fleet/feed/?tool=email.send")) == 0
    future = (timezone.now() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert html_rows(page_of(client, f"/fleet/feed/?since={future}")) == 0


def html_rows(html: str) -> int:
    return len(re.findall(r'<tr class="wd-call ', html))


@pytest.mark.parametrize(
    "query",
    ["outcome=maybe", "reason=nonsense", "agent=nobody", "after=yesterday", "before=2026-01-01T00:00:00%2B00:00|x"],
)
def test_feed_refuses_bad_filters_with_a_message(watched, client, query):
    html = page_of(client, f"/fleet/feed/?{query}")
    assert "Fix the filters above" in html
    assert html_rows(html) == 0


def test_feed_live_poll_returns_only_newer_rows_and_older_pages_page(watched, client):
    html = page_of(client, "/fleet/feed/")
    cursor = re.search(r'<tr class="wd-call [^"]*" data-cursor="([^"]+)"', html).group(1)
    assert page_of(client, "/fleet/feed/", **HTMX, data={"after": cursor}).strip() == ""
    ask(watched, {**VALID_PAYMENT, "amount": 77})
    fresh = client.get("/fleet/feed/", {"after": cursor}, **HTMX).content.decode()
    assert html_rows(fresh) == 1
    assert "<html" not in fresh
    oldest = re.findall(r'<tr class="wd-call [^"]*" data-cursor="([^"]+)"', html)[2]
    assert html_rows(client.get("/fleet/feed/", {"before": oldest}).content.decode()) == 3


def test_call_page_shows_everything_with_sensitive_values_masked(watched, client, actor):
    tool = ToolFactory(name="crm.lookup")
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"contact": {"type": "string"}, "national_id": {"type": "string", "x-warden-sensitive": True}},
    }
    policy_services.contract_create(actor=actor, tool=tool, input_schema=schema, activate=True)
    registry_services.grant_create(actor=actor, agent=watched.agent, tool="crm.lookup", reason="Test.")
    decided = (
        watched.client()
        .post(
            "/api/v1/tool-calls",
            {"tool": "crm.lookup", "arguments": {"contact": "c-1", "national_id": "756.1234.5678.97"}},
            format="json",
        )
        .json()
    )
    assert decided["decision"] == "allow"
    report(watched, decided["id"], {"name": "Ada"}, cost=0.5)
    html = page_of(client, f"/fleet/calls/{decided['id']}/")
    assert "756.1234.5678.97" not in html
    assert "(sensitive)" in html
    assert "tool_call.decided" in html
    assert "tool_call.result_reported" in html
    assert "waiting for the sealer" in html
    escalated = ToolCall.objects.get(escalated=True)
    html = page_of(client, f"/fleet/calls/{escalated.pk}/")
    assert "rule_escalated" in html
    assert "Over 2,000 needs approval." in html
    assert 'id="approval-state">Pending<' in html
    assert 'hx-trigger="every' in html  # still waiting: the page keeps itself current
    assert client.get(f"/fleet/calls/{escalated.pk}/".replace(str(escalated.pk)[:8], "00000000")).status_code == 404


def test_agent_page_profile_authority_timeline_and_history(watched, client):
    html = page_of(client, "/fleet/agents/payer/")
    assert 'id="authority"' in html
    assert "payments.transfer" in html
    assert "100/min" in html
    assert 'id="agent-series"' in html
    assert 'id="recent-calls"' in html
    assert "Key issued" in html  # history from the registry's change records
    assert 'id="quarantine-form"' not in html  # viewers change nothing
    fragment = page_of(client, "/fleet/agents/payer/", **HTMX)
    assert fragment.lstrip().startswith('<div id="agent-live"')
    assert 'id="agent-tables" class="wd-grid" hx-swap-oob="true"' in fragment
    assert client.get("/fleet/agents/nobody/").status_code == 404


def test_viewers_cannot_quarantine_or_release(watched, client):
    assert client.post("/fleet/agents/payer/quarantine", {"reason": "No."}).status_code == 403
    assert client.post("/fleet/agents/payer/release", {"reason": "No."}).status_code == 403
    assert Agent.objects.get(slug="payer").status == AgentStatus.ACTIVE


def test_an_admin_quarantines_and_releases_with_a_reason(traffic, client, warden_admin):
    client.force_login(warden_admin)
    html = page_of(client, "/fleet/agents/payer/")
    assert 'id="quarantine-form"' in html
    assert 'id="release-form"' not in html
    response = client.post("/fleet/agents/payer/quarantine", {"reason": "  "})
    assert response.status_code == 302
    assert Agent.objects.get(slug="payer").status == AgentStatus.ACTIVE
    client.post("/fleet/agents/payer/quarantine", {"reason": "Odd transfers at night."})
    assert Agent.objects.get(slug="payer").status == AgentStatus.QUARANTINED
    quarantine = Quarantine.objects.get(agent__slug="payer")
    assert (quarantine.reason, quarantine.started_by_label) == ("Odd transfers at night.", "warden-admin")
    assert AuditRecord.objects.filter(action="guardian.quarantined", agent_id=str(traffic.agent.pk)).count() == 1
    html = page_of(client, "/fleet/agents/payer/")
    assert 'id="release-form"' in html
    assert "Odd transfers at night." in html
    assert client.get("/fleet/agents/payer/quarantine").status_code == 405
    client.post("/fleet/agents/payer/release", {"reason": "Checked with the owner.", "to": "active"})
    assert Agent.objects.get(slug="payer").status == AgentStatus.ACTIVE
    quarantine.refresh_from_db()
    assert quarantine.release_reason == "Checked with the owner."


def test_sprawl_report_finds_each_kind(live_policy, client, viewer, actor):
    client.force_login(viewer)
    old = timezone.now() - dt.timedelta(days=90)
    idle = AgentFactory(slug="idle-one", status=AgentStatus.ACTIVE)
    twin = AgentFactory(slug="twin", status=AgentStatus.ACTIVE)
    Agent.objects.filter(pk__in=[idle.pk, twin.pk]).update(created_at=old)
    for agent in (idle, twin):
        registry_services.grant_create(actor=actor, agent=agent, tool="payments.transfer", reason="Same job.")
    ToolFactory(name="reports.shred")
    role = RoleFactory(slug="clerk")
    registry_services.grant_create(actor=actor, role=role, tool="payments.transfer", reason="Clerks pay.")
    expired = registry_services.credential_issue(actor=actor, agent=idle)
    Credential.objects.filter(prefix=expired.credential.prefix).update(expires_at=old)
    ask(live_policy)
    rollups.roll_up()
    html = page_of(client, "/fleet/sprawl/?days=30")
    section = lambda name: html[html.index(f'id="sprawl-{name}"') :][:3000]  # noqa: E731
    assert "idle-one" in section("idle")
    assert "payer" not in section("idle")[:600]
    assert "idle-one" in section("duplicates")
    assert "twin" in section("duplicates")
    assert "idle-one" in section("unused")
    assert "role clerk" in section("unused")
    assert "reports.shred" in section("unusable")
    assert "idle-one" in section("expired")
    assert page_of(client, "/fleet/sprawl/?days=abc")  # a bad number falls back to 30 days


@pytest.mark.parametrize(
    "url",
    [
        "/fleet/",
        "/fleet/?window=24h",
        "/fleet/feed/",
        "/fleet/feed/?reason=limit_exceeded",
        "/fleet/sprawl/",
        "/fleet/agents/payer/",
        "CALL",
    ],
)
def test_query_counts_do_not_grow_with_the_fleet(url, traffic, client, viewer):
    client.force_login(viewer)

    def queries() -> int:
        target = url if url != "CALL" else f"/fleet/calls/{ToolCall.objects.filter(escalated=True).get().pk}/"
        with CaptureQueriesContext(connection) as captured:
            page_of(client, target)
        return len(captured.captured_queries)

    rollups.roll_up()
    before = queries()
    for index in range(12):
        ask(traffic, {**VALID_PAYMENT, "amount": 10 + index})
    for index in range(3):
        AgentFactory(slug=f"extra-{index}", status=AgentStatus.ACTIVE)
    rollups.roll_up()
    assert queries() == before
    assert before <= 25, f"{url}: {before} queries"


def test_the_vendored_libraries_collect_under_the_production_storage(settings, tmp_path):
    """`make run` and production collect static files with WhiteNoise's manifest storage, which
    follows every reference inside a file (a missing source map fails the whole collection)."""
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (tmp_path / "vendor" / "htmx.min.js").exists()
    assert (tmp_path / "vendor" / "chart.umd.min.js").exists()
