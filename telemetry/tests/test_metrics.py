"""Prometheus metrics at /metrics: what each app counts, with bounded labels, and who may read them.

Counters and histograms belong to the process, so the tests compare a scrape before and after
what they do; the gauges are read from the test's own database, so they are compared as they are.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import DatabaseError
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from approvals import services as approval_services
from approvals.models import Approval
from core.actors import Actor
from core.testing import assert_error, require_command
from guardian import services as guardian_services
from guardian.tests.conftest import EXFILTRATION, INJECTED, Fleet
from policy.tests.builders import VALID_PAYMENT
from policy.tests.conftest import LivePolicy
from registry import selectors as registry_selectors
from registry.choices import AgentStatus
from registry.tests.factories import AgentFactory
from telemetry import metrics as telemetry_metrics

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests-0123456789"


@dataclass(frozen=True)
class Scrape:
    """One /metrics answer, parsed."""

    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    families: frozenset[str]

    def value(self, name: str, **labels: str) -> float:
        """The sample's value; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """The sum over every series of one sample name."""
        return sum(value for (sample, _), value in self.samples.items() if sample == name)

    def since(self, earlier: Scrape, name: str, **labels: str) -> float:
        """How much a series grew since an earlier scrape."""
        return self.value(name, **labels) - earlier.value(name, **labels)


def scrape(client: Any, **request: Any) -> Scrape:
    response = client.get("/metrics", **request)
    assert response.status_code == 200, response.content
    text = response.content.decode()
    families = list(text_string_to_metric_families(text))
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families
        for sample in family.samples
    }
    return Scrape(text=text, samples=samples, families=frozenset(family.name for family in families))


def ask(policy: LivePolicy, arguments: dict[str, Any], *, tool: str = "payments.transfer", **body: Any) -> Any:
    response = policy.client().post("/api/v1/tool-calls", {"tool": tool, "arguments": arguments, **body}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def report(policy: LivePolicy, call_id: str, output: Any) -> None:
    response = policy.client().post(
        f"/api/v1/tool-calls/{call_id}/result", {"status": "succeeded", "output": output}, format="json"
    )
    assert response.status_code == 200, response.content


# The decision path ------------------------------------------------------------------------------


def test_a_decision_counts_its_outcome_and_tool_its_duration_and_each_reason_code_once(client, live_policy):
    before = scrape(client)
    assert ask(live_policy, VALID_PAYMENT)["decision"] == "allow"
    over_limit = ask(live_policy, {**VALID_PAYMENT, "amount": 6000})
    assert [reason["code"] for reason in over_limit["reasons"]] == ["limit_exceeded"]
    broken = ask(live_policy, {**VALID_PAYMENT, "currency": "XXX", "amount": -1})
    assert [reason["code"] for reason in broken["reasons"]] == ["schema_violation", "schema_violation"]
    after = scrape(client)

    assert after.since(before, "warden_tool_calls_total", decision="allow", tool="payments.transfer") == 1
    assert after.since(before, "warden_tool_calls_total", decision="deny", tool="payments.transfer") == 2
    assert after.since(before, "warden_decision_duration_seconds_count") == 3
    assert 0 < after.since(before, "warden_decision_duration_seconds_sum") < 3
    assert after.since(before, "warden_reasons_total", code="limit_exceeded") == 1
    assert after.since(before, "warden_reasons_total", code="schema_violation") == 1  # one decision, two fields


def test_a_replayed_idempotency_key_is_not_counted_again(client, live_policy):
    before = scrape(client)
    first = ask(live_policy, VALID_PAYMENT, idempotency_key="invoice-42")
    again = ask(live_policy, VALID_PAYMENT, idempotency_key="invoice-42")
    assert again["id"] == first["id"]
    after = scrape(client)
    assert after.since(before, "warden_tool_calls_total", decision="allow", tool="payments.transfer") == 1
    assert after.since(before, "warden_decision_duration_seconds_count") == 1


def test_a_tool_the_policy_does_not_know_is_counted_as_unregistered(client, live_policy):
    before = scrape(client)
    for invented in ("made.up.tool", "another.invention"):
        assert ask(live_policy, {}, tool=invented)["reasons"][0]["code"] == "unknown_tool"
    after = scrape(client)
    assert after.since(before, "warden_tool_calls_total", decision="deny", tool="unregistered") == 2
    assert after.since(before, "warden_reasons_total", code="unknown_tool") == 2
    assert "made.up.tool" not in after.text
    assert "another.invention" not in after.text


def test_an_output_that_breaks_the_contract_counts_as_drift_of_its_tool(client, live_policy):
    kept, broken = (ask(live_policy, {**VALID_PAYMENT, "amount": amount})["id"] for amount in (10, 20))
    before = scrape(client)
    report(live_policy, kept, {"transfer_id": "t-1", "status": "booked"})
    report(live_policy, broken, {"status": "lost"})
    after = scrape(client)
    assert after.since(before, "warden_contract_drift_total", tool="payments.transfer") == 1


# Approvals --------------------------------------------------------------------------------------


def _settle(approval_id: str, outcome: str, approver: Any) -> None:
    if outcome == "approved":
        approval_services.vote(approval_id=approval_id, user=approver, verdict="approve", comment="Invoice checked.")
    elif outcome == "rejected":
        approval_services.vote(approval_id=approval_id, user=approver, verdict="reject", comment="Not ours.")
    elif outcome == "cancelled":
        approval_services.cancel(
            approval_id=approval_id, actor=Actor.from_user(approver), reason="Paid by hand.", user=approver
        )
    else:
        assert approval_services.expire_due(now=Approval.objects.get(pk=approval_id).due_at) == 1


@pytest.mark.parametrize("outcome", ["approved", "rejected", "cancelled", "expired"])
def test_a_settled_approval_observes_its_wait_and_pending_approvals_are_read_from_the_database(
    client, escalating, approver, django_capture_on_commit_callbacks, outcome
):
    before = scrape(client)
    document = escalating.ask()
    waiting = scrape(client)
    assert waiting.value("warden_approvals_pending", kind="escalation") == 1
    assert waiting.value("warden_approvals_pending", kind="review") == 0
    assert waiting.since(before, "warden_tool_calls_total", decision="escalate", tool="payments.transfer") == 1

    with django_capture_on_commit_callbacks(execute=True):
        _settle(document["approval"]["id"], outcome, approver)
    after = scrape(client)
    assert after.value("warden_approvals_pending", kind="escalation") == 0
    assert after.since(waiting, "warden_approval_wait_seconds_count", kind="escalation", outcome=outcome) == 1
    if outcome == "expired":  # settled at its due time: it waited the default hour exactly
        assert after.since(waiting, "warden_approval_wait_seconds_sum", kind="escalation", outcome=outcome) == 3600
    # The settlement is the approval's to count: the call is not decided a second time.
    assert after.total("warden_tool_calls_total") == waiting.total("warden_tool_calls_total")


def test_a_settlement_is_observed_only_once_it_commits(client, escalating, approver):
    document = escalating.ask()
    before = scrape(client)
    _settle(document["approval"]["id"], "approved", approver)  # the test's transaction never commits
    after = scrape(client)
    assert after.since(before, "warden_approval_wait_seconds_count", kind="escalation", outcome="approved") == 0


# The registry -----------------------------------------------------------------------------------


def test_agents_are_counted_by_status_from_the_database_with_every_status_present(client):
    for status, count in {AgentStatus.ACTIVE: 2, AgentStatus.SUSPENDED: 1, AgentStatus.QUARANTINED: 1}.items():
        for _ in range(count):
            AgentFactory(status=status)
    result = scrape(client)
    assert {status: result.value("warden_agents", status=status) for status in AgentStatus.values} == {
        "draft": 0,
        "active": 2,
        "suspended": 1,
        "quarantined": 1,
        "retired": 0,
    }


# Guardians --------------------------------------------------------------------------------------


def test_guardian_scores_and_a_quarantine_are_observed_once_committed_and_once_only(
    client, fleet: Fleet, django_capture_on_commit_callbacks
):
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        document = fleet.ask("mailer", "email.send", EXFILTRATION, purpose="Summarise today's alerts.")
    assert document["decision"] == "deny"  # the pre-check scored it past the quarantine threshold
    after = scrape(client)
    assert after.since(before, "warden_guardian_score_count", scorer="content") == 1
    assert after.since(before, "warden_guardian_score_sum", scorer="content") >= 0.9
    assert after.since(before, "warden_quarantines_total") == 1

    # A result scored after commit, then the same scoring again (a redelivered task): observed once.
    read = fleet.ask("assistant", "docs.read", {"path": "/inbox"}, purpose="Summarise the customer reviews.")
    with django_capture_on_commit_callbacks(execute=True):
        fleet.report("assistant", read["id"], {"reviews": [INJECTED]})
    scored = scrape(client)
    assert scored.since(after, "warden_guardian_score_count", scorer="content") == 2  # the call and its output
    assert scored.since(after, "warden_quarantines_total") == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert guardian_services.score_result(read["id"]) == []
    again = scrape(client)
    assert again.since(scored, "warden_guardian_score_count", scorer="content") == 0
    assert again.since(scored, "warden_quarantines_total") == 0


# Who may read /metrics --------------------------------------------------------------------------


def test_with_a_token_set_only_its_bearer_may_scrape(client, settings):
    settings.WARDEN = {**settings.WARDEN, "METRICS_TOKEN": TOKEN}
    missing = client.get("/metrics")
    assert_error(missing, 401, "not_authenticated")
    assert missing["WWW-Authenticate"] == 'Bearer realm="warden-metrics"'
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-the-token")
    assert_error(wrong, 401, "authentication_failed")
    assert wrong["WWW-Authenticate"] == 'Bearer realm="warden-metrics"'
    assert_error(client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}"), 401, "not_authenticated")
    assert_error(client.get("/metrics", HTTP_AUTHORIZATION="Bearer ünïcode"), 401, "authentication_failed")

    right = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="203.0.113.7")
    assert right.status_code == 200
    assert right["Content-Type"] == CONTENT_TYPE_LATEST
    assert "no-cache" in right["Cache-Control"]
    assert b"# TYPE warden_agents gauge" in right.content


@pytest.mark.parametrize("address", ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_clients_on_this_machine_may_scrape(client, address):
    assert client.get("/metrics", REMOTE_ADDR=address).status_code == 200


@pytest.mark.parametrize(
    ("address", "headers"),
    [
        ("203.0.113.7", {}),
        ("10.0.0.5", {}),
        ("::ffff:10.0.0.5", {}),
        ("127.0.0.1", {"HTTP_X_FORWARDED_FOR": "203.0.113.7"}),  # a proxy on this machine forwarded it
        ("127.0.0.1", {"HTTP_FORWARDED": "for=203.0.113.7"}),
        ("127.0.0.1", {"HTTP_X_REAL_IP": "203.0.113.7"}),
    ],
)
def test_without_a_token_other_clients_are_refused(client, address, headers):
    body = assert_error(client.get("/metrics", REMOTE_ADDR=address, **headers), 403, "permission_denied")
    assert "WARDEN_METRICS_TOKEN" in body["message"]


def test_only_get_is_allowed_and_an_unauthenticated_caller_learns_nothing_more(client, settings):
    response = client.post("/metrics", {})
    assert_error(response, 405, "method_not_allowed")
    assert response["Allow"] == "GET"
    settings.WARDEN = {**settings.WARDEN, "METRICS_TOKEN": TOKEN}
    assert_error(client.post("/metrics", {}), 401, "not_authenticated")
    assert_error(client.put("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"), 405, "method_not_allowed")


# Never a 500 ------------------------------------------------------------------------------------


def test_a_database_outage_drops_the_database_gauges_not_the_scrape(client, live_policy, monkeypatch):
    ask(live_policy, VALID_PAYMENT)

    def unavailable() -> dict[str, int]:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(registry_selectors, "agent_count_by_status", unavailable)
    result = scrape(client)
    assert "warden_agents" not in result.families
    assert {"warden_approvals_pending", "warden_tool_calls"} <= result.families


def test_a_failing_exposition_is_a_json_503_never_a_500(client, monkeypatch):
    def broken() -> bytes:
        raise ValueError("a corrupt multiprocess file")

    monkeypatch.setattr(telemetry_metrics, "exposition", broken)
    assert_error(client.get("/metrics"), 503, "metrics_unavailable")


# The format -------------------------------------------------------------------------------------


def test_the_exposition_passes_promtool_check_metrics(
    client, live_policy, fleet: Fleet, approver, django_capture_on_commit_callbacks
):
    promtool = require_command("promtool", package="prometheus")
    # A sample in every family: decisions with reasons, drift, a guardian escalation approved, a quarantine.
    ask(live_policy, {}, tool="made.up.tool")
    report(live_policy, ask(live_policy, VALID_PAYMENT)["id"], {"status": "lost"})
    fleet.configure(quarantine_threshold=1.0)
    with django_capture_on_commit_callbacks(execute=True):
        escalated = fleet.ask("mailer", "email.send", EXFILTRATION, purpose="Summarise today's alerts.")
        approval_services.vote(
            approval_id=escalated["approval"]["id"], user=approver, verdict="approve", comment="Expected."
        )
        fleet.configure(quarantine_threshold=0.9)
        fleet.ask("assistant", "email.send", EXFILTRATION, purpose="Summarise today's alerts.")
    result = scrape(client)
    for family in (
        "warden_tool_calls",
        "warden_decision_duration_seconds",
        "warden_reasons",
        "warden_contract_drift",
        "warden_approvals_pending",
        "warden_approval_wait_seconds",
        "warden_guardian_score",
        "warden_quarantines",
        "warden_agents",
    ):
        assert family in result.families, family
    assert result.total("warden_approval_wait_seconds_count") >= 1
    assert result.total("warden_quarantines_total") >= 1

    checked = subprocess.run(  # noqa: S603  (promtool, found on PATH, reads the exposition on stdin)
        [promtool, "check", "metrics"], input=result.text, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
