"""Guardians acting on the fleet: pre-checks on the decision path, scoring after results (once),
quarantine with containment and release, reviews when guardians escalate or disagree.

The guardian here uses the content scorer alone, so every value is a real score of a crafted
text, not a stand-in. Scoring after a result runs through Celery (eager in the test settings)
once the transaction commits, as in production.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from approvals import services as approval_services
from approvals.choices import ApprovalKind, ApprovalState
from approvals.models import Approval
from audit.models import AuditRecord
from core.errors import InvalidInput
from guardian import services
from guardian.choices import Action, Stage
from guardian.models import AgentProfile, Assessment, Guardian, Quarantine
from guardian.scorers import registry
from guardian.scorers.base import BaseScorer, SubjectKind
from guardian.tests.conftest import BENIGN, EXFILTRATION, INJECTED, Fleet
from policy import services as policy_services
from policy.models import ToolCall
from registry import services as registry_services
from registry.choices import AgentStatus

pytestmark = pytest.mark.django_db


def _audit(action: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(row) for row in AuditRecord.objects.filter(action=action).values_list("payload", flat=True)]


# Pre-checks on the decision path -----------------------------------------------------------------


def test_a_benign_call_of_a_precheck_tool_is_allowed_with_its_assessment(fleet: Fleet) -> None:
    document = fleet.ask(
        "mailer",
        "email.send",
        {"to": "bob@customers.example.com", "subject": "Your card", "body": "It is on its way."},
        purpose="Reply to bob@customers.example.com about his new card.",
    )
    assert document["decision"] == "allow"
    assert document["decision_token"]
    [seen] = document["guardian"]
    assert (seen["guardian"], seen["stage"], seen["subject"], seen["action"]) == (
        "sentinel",
        "precheck",
        "tool_call",
        "none",
    )
    assert seen["value"] < 0.5
    assert seen["scores"].keys() == {"content"}
    assessment = Assessment.objects.get(tool_call_id=document["id"])
    assert assessment.scores.get().scorer == "content"
    assert [row["tool_call"] for row in _audit("guardian.assessed")] == [document["id"]]


def test_a_precheck_above_the_quarantine_threshold_denies_and_quarantines(fleet: Fleet) -> None:
    document = fleet.ask("mailer", "email.send", EXFILTRATION, purpose="Summarise today's alerts.")
    assert document["decision"] == "deny"
    assert [reason["code"] for reason in document["reasons"]] == ["guardian_denied"]
    assert "quarantined" in document["reasons"][0]["message"]
    assert document["guardian"][0]["action"] == "quarantine"
    assert fleet.reload(fleet.mailer).status == AgentStatus.QUARANTINED
    quarantine = Quarantine.objects.get(agent=fleet.mailer)
    assert (quarantine.guardian, str(quarantine.tool_call_id), quarantine.is_open) == (
        fleet.guardian,
        document["id"],
        True,
    )
    assert "exfiltration" in quarantine.reason or "secret" in quarantine.reason
    [record] = _audit("guardian.quarantined")
    assert record["tool_call"] == document["id"]
    # The circuit is open: the agent's next call is denied by the status gate.
    again = fleet.ask("mailer", "docs.read", {"path": "/notes"})
    assert [reason["code"] for reason in again["reasons"]] == ["agent_not_active"]


def test_a_precheck_between_escalate_and_quarantine_sends_the_call_to_a_human(fleet: Fleet) -> None:
    fleet.configure(quarantine_threshold=1.0)
    document = fleet.ask("mailer", "email.send", EXFILTRATION, purpose="Summarise today's alerts.")
    assert (document["decision"], document["decision_token"]) == ("escalate", None)
    assert [reason["code"] for reason in document["reasons"]] == ["guardian_escalated"]
    assert document["approval"]["state"] == "pending"
    assert fleet.reload(fleet.mailer).status == AgentStatus.ACTIVE


@override_settings(WARDEN={"GUARDIAN_PRECHECK_BUDGET_MS": 0.0})
def test_a_precheck_that_runs_out_of_time_escalates_and_never_allows(fleet: Fleet) -> None:
    document = fleet.ask("mailer", "email.send", {"to": "bob@customers.example.com", "subject": "Hi", "body": "Hello."})
    assert document["decision"] == "escalate"
    assert [reason["code"] for reason in document["reasons"]] == ["guardian_timeout"]
    assert document["reasons"][0]["detail"]["budget_ms"] == 0.0
    assert not Assessment.objects.exists()  # a late verdict is not recorded as if it had counted


class _SlowScorer(BaseScorer):
    """A scorer that takes 200 ms: the pre-check must not wait for it."""

    name = "test-slow"
    kinds = frozenset({SubjectKind.TOOL_CALL})

    def evaluate(self, subject: Any) -> tuple[float, list[Any], dict[str, Any]]:
        time.sleep(0.2)
        return 0.0, [], {}


@override_settings(WARDEN={"GUARDIAN_PRECHECK_BUDGET_MS": 20.0})
def test_a_precheck_waits_no_longer_than_its_budget_for_a_slow_scorer(fleet: Fleet) -> None:
    registry.register(_SlowScorer)
    try:
        fleet.configure(scorers={"test-slow": 1.0})
        started = time.perf_counter()
        document = fleet.ask("mailer", "email.send", {"to": "bob@customers.example.com", "subject": "Hi", "body": "."})
        elapsed = time.perf_counter() - started
    finally:
        registry._factories.pop("test-slow", None)
        registry._instances.pop("test-slow", None)
    assert (document["decision"], [reason["code"] for reason in document["reasons"]]) == (
        "escalate",
        ["guardian_timeout"],
    )
    assert document["reasons"][0]["detail"]["budget_ms"] == 20.0
    assert elapsed < 0.2  # it answered before the scorer finished
    assert not Assessment.objects.exists()


def test_tools_not_marked_for_prechecks_are_decided_without_guardians(fleet: Fleet) -> None:
    fleet.ask("mailer", "docs.read", {"path": "/warm-up"})  # the first call of a process builds the snapshot
    with CaptureQueriesContext(connection) as queries:
        document = fleet.ask("mailer", "docs.read", {"path": "/notes"})
    assert not [query["sql"] for query in queries.captured_queries if "guardian" in query["sql"]]
    assert document["decision"] == "allow"
    assert "guardian" not in document
    assert not Assessment.objects.exists()


def test_a_disabled_or_inactive_guardian_does_not_judge(fleet: Fleet) -> None:
    fleet.configure(enabled=False)
    assert fleet.ask("mailer", "email.send", EXFILTRATION)["decision"] == "allow"
    fleet.configure(enabled=True)
    registry_services.agent_transition(actor=fleet.actor, agent=fleet.guardian.agent, to="suspended")
    assert fleet.ask("mailer", "email.send", EXFILTRATION)["decision"] == "allow"


def test_two_guardians_disagreeing_on_a_precheck_escalate_the_call(fleet: Fleet) -> None:
    fleet.configure(escalate_threshold=0.99, quarantine_threshold=1.0)  # sentinel only flags
    skeptic = fleet.add_guardian("skeptic", scorers={"behaviour": 1.0})  # a cold baseline: near 0
    document = fleet.ask("mailer", "email.send", EXFILTRATION, purpose="Summarise today's alerts.")
    assert document["decision"] == "escalate"
    assert [reason["code"] for reason in document["reasons"]] == ["guardian_disagreement"]
    assert {row["guardian"]: row["disagreement"] for row in document["guardian"]} == {
        "sentinel": True,
        "skeptic": True,
    }
    assert Assessment.objects.filter(guardian=skeptic, disagreement=True).count() == 1


# After a result: scoring in Celery, once --------------------------------------------------------


def _read_and_report(fleet: Fleet, output: Any, captured: Any, slug: str = "mailer") -> str:
    document = fleet.ask(slug, "docs.read", {"path": "/inbox"}, purpose="Summarise the customer reviews.")
    with captured(execute=True):
        fleet.report(slug, document["id"], output)
    return str(document["id"])


def test_a_reported_injected_output_is_scored_after_commit_and_quarantines(
    fleet: Fleet, django_capture_on_commit_callbacks
) -> None:
    call_id = _read_and_report(fleet, {"reviews": [INJECTED]}, django_capture_on_commit_callbacks)
    rows = {row.subject: row for row in Assessment.objects.filter(tool_call_id=call_id, stage=Stage.RESULT)}
    assert set(rows) == {"tool_call", "tool_output"}
    assert rows["tool_call"].action == Action.NONE
    output = rows["tool_output"]
    assert output.value >= 0.9
    assert output.action == Action.QUARANTINE
    assert output.reasons[0]["code"] == "injected_instruction"
    assert "text[" in output.reasons[0]["where"]
    assert fleet.reload(fleet.mailer).status == AgentStatus.QUARANTINED
    # Scoring the same result again (a redelivered task) stores nothing and acts on nothing.
    records = AuditRecord.objects.count()
    assert services.score_result(call_id) == []
    assert Assessment.objects.filter(tool_call_id=call_id).count() == 2
    assert Quarantine.objects.filter(agent=fleet.mailer).count() == 1
    assert AuditRecord.objects.count() == records
    # The tool-call API shows the assessments to the agent that made the call.
    shown = fleet.client("mailer").get(f"/api/v1/tool-calls/{call_id}").json()
    assert {row["subject"]: row["action"] for row in shown["guardian"]} == {
        "tool_call": "none",
        "tool_output": "quarantine",
    }


def test_a_benign_output_is_scored_and_nothing_happens(fleet: Fleet, django_capture_on_commit_callbacks) -> None:
    call_id = _read_and_report(fleet, {"text": BENIGN}, django_capture_on_commit_callbacks)
    assert list(Assessment.objects.filter(tool_call_id=call_id).values_list("action", flat=True)) == [
        "none",
        "none",
    ]
    assert fleet.reload(fleet.mailer).status == AgentStatus.ACTIVE
    assert not Approval.objects.exists()


def test_an_escalated_result_opens_a_review_and_a_rejection_quarantines(
    fleet: Fleet, approver: Any, django_capture_on_commit_callbacks
) -> None:
    fleet.configure(quarantine_threshold=1.0)
    call_id = _read_and_report(fleet, {"reviews": [INJECTED]}, django_capture_on_commit_callbacks)
    review = Approval.objects.get(tool_call_id=call_id)
    assert (review.kind, review.state, review.reasons[0]["code"]) == (
        ApprovalKind.REVIEW,
        ApprovalState.PENDING,
        "guardian_escalated",
    )
    # The call already ran: it stays allowed whatever the review says.
    assert ToolCall.objects.get(pk=call_id).decision == "allow"
    # The agent sees its own escalations, not reviews of itself, and cannot withdraw one.
    assert fleet.client("mailer").get("/api/v1/approvals").json()["results"] == []
    refused = fleet.client("mailer").post(f"/api/v1/approvals/{review.pk}/cancel", {"reason": "no"}, format="json")
    assert refused.status_code == 404
    approval_services.vote(approval_id=review.pk, user=approver, verdict="reject", comment="It obeyed the review.")
    assert fleet.reload(fleet.mailer).status == AgentStatus.QUARANTINED
    quarantine = Quarantine.objects.get(agent=fleet.mailer)
    assert quarantine.reason.startswith("Review confirmed the guardians' concern: It obeyed the review.")
    assert quarantine.started_by_label == "approver"
    assert ToolCall.objects.get(pk=call_id).decision == "allow"


def test_approving_a_review_clears_it_without_quarantine(
    fleet: Fleet, approver: Any, django_capture_on_commit_callbacks
) -> None:
    fleet.configure(quarantine_threshold=1.0)
    call_id = _read_and_report(fleet, {"reviews": [INJECTED]}, django_capture_on_commit_callbacks)
    review = Approval.objects.get(tool_call_id=call_id)
    approval_services.vote(approval_id=review.pk, user=approver, verdict="approve", comment="Quoted, not obeyed.")
    assert Approval.objects.get(pk=review.pk).state == ApprovalState.APPROVED
    assert fleet.reload(fleet.mailer).status == AgentStatus.ACTIVE
    assert not Quarantine.objects.exists()


def test_a_guardian_with_no_scorer_for_a_subject_has_no_opinion_and_never_disagrees(
    fleet: Fleet, django_capture_on_commit_callbacks
) -> None:
    fleet.configure(escalate_threshold=0.99, quarantine_threshold=1.0)
    fleet.add_guardian("skeptic", scorers={"behaviour": 1.0}, flag_threshold=0.5)
    call_id = _read_and_report(fleet, {"reviews": [INJECTED]}, django_capture_on_commit_callbacks)
    # The behaviour scorer judges calls, not outputs: the skeptic judged the call only.
    outputs = Assessment.objects.filter(tool_call_id=call_id, subject="tool_output")
    assert {row.guardian.agent.slug: row.disagreement for row in outputs} == {"sentinel": False}
    calls = Assessment.objects.filter(tool_call_id=call_id, subject="tool_call")
    assert {row.guardian.agent.slug for row in calls} == {"sentinel", "skeptic"}
    assert not Approval.objects.exists()


def test_disagreement_on_the_same_subject_opens_one_review(fleet: Fleet, django_capture_on_commit_callbacks) -> None:
    fleet.configure(escalate_threshold=0.99, quarantine_threshold=1.0)
    fleet.add_guardian("lenient", scorers={"content": 0.2})  # trusts the same evidence far less
    call_id = _read_and_report(fleet, {"reviews": [INJECTED]}, django_capture_on_commit_callbacks)
    outputs = {
        row.guardian.agent.slug: row for row in Assessment.objects.filter(tool_call_id=call_id, subject="tool_output")
    }
    assert outputs["sentinel"].value - outputs["lenient"].value >= 0.5
    assert outputs["sentinel"].disagreement
    assert outputs["lenient"].disagreement
    [review] = Approval.objects.filter(tool_call_id=call_id, kind=ApprovalKind.REVIEW)
    assert review.reasons[0]["code"] == "guardian_disagreement"
    assert "sentinel scored" in review.reasons[0]["message"]
    services.score_result(call_id)  # a second run opens no second review
    assert Approval.objects.filter(tool_call_id=call_id).count() == 1


def test_the_baseline_folds_every_call_once_and_remembers_allowed_destinations(
    fleet: Fleet, django_capture_on_commit_callbacks
) -> None:
    for _ in range(3):
        fleet.ask(
            "mailer",
            "email.send",
            {"to": "bob@customers.example.com", "subject": "Hi", "body": "Hello."},
            purpose="Write to bob@customers.example.com.",
        )
    call_id = _read_and_report(fleet, {"text": BENIGN}, django_capture_on_commit_callbacks)
    profile = AgentProfile.objects.get(agent=fleet.mailer)
    assert profile.observations == 4
    assert "bob@customers.example.com" in profile.destinations
    assert str(profile.observed_until) == str(ToolCall.objects.get(pk=call_id).created_at)
    services.fold(str(fleet.mailer.pk), until=profile.observed_until, include_until=True)
    assert AgentProfile.objects.get(agent=fleet.mailer).observations == 4  # nothing folded twice
    # A known destination is no longer news to the exfiltration check.
    known = fleet.ask("mailer", "email.send", {"to": "bob@customers.example.com", "subject": "Hi", "body": "Hi."})
    assert known["decision"] == "allow"


# Quarantine: containment and release -------------------------------------------------------------


def _pending_escalation(fleet: Fleet, slug: str) -> Approval:
    policy_services.rule_create(
        actor=fleet.actor,
        name=f"wires from {slug} need a human",
        expression="args.subject == 'wire'",
        effect="escalate",
        scope="tool",
        scope_tool="email.send",
    )
    document = fleet.ask(slug, "email.send", {"to": "a@b.example", "subject": "wire", "body": "x"})
    assert document["decision"] == "escalate", document
    return Approval.objects.get(tool_call_id=document["id"])


def test_quarantine_cancels_pending_work_and_contains_delegates_and_supervised_agents(fleet: Fleet) -> None:
    fleet.configure(enabled=False)  # only containment is under test here
    pending = _pending_escalation(fleet, "orchestrator")
    services.quarantine(agent_id=str(fleet.orchestrator.pk), actor=fleet.actor, reason="Exfiltration attempt.")
    assert fleet.reload(fleet.orchestrator).status == AgentStatus.QUARANTINED
    assert Approval.objects.get(pk=pending.pk).state == ApprovalState.CANCELLED
    [record] = _audit("guardian.quarantined")
    assert record["approvals_cancelled"] == 1
    # Its own calls: denied.
    own = fleet.ask("orchestrator", "docs.read", {"path": "/x"})
    assert (own["decision"], [r["code"] for r in own["reasons"]]) == ("deny", ["agent_not_active"])
    # A call it supervises: escalated to a human, naming it.
    supervised = fleet.ask("mailer", "docs.read", {"path": "/x"})
    assert (supervised["decision"], [r["code"] for r in supervised["reasons"]]) == (
        "escalate",
        ["quarantine_containment"],
    )
    assert supervised["reasons"][0]["detail"] == {"quarantined_agent": "orchestrator"}
    # A call made on its behalf: escalated too.
    delegated = fleet.ask("assistant", "docs.read", {"path": "/x"}, on_behalf_of=["orchestrator"])
    assert (delegated["decision"], [r["code"] for r in delegated["reasons"]]) == (
        "escalate",
        ["quarantine_containment"],
    )
    # Quarantining it again changes nothing.
    assert services.quarantine(agent_id=str(fleet.orchestrator.pk), actor=fleet.actor, reason="Again.") is not None
    assert Quarantine.objects.filter(agent=fleet.orchestrator).count() == 1


def test_release_needs_a_permitted_human_and_a_reason(fleet: Fleet, warden_admin: Any, viewer: Any) -> None:
    services.quarantine(agent_id=str(fleet.orchestrator.pk), actor=fleet.actor, reason="Looping.")
    with pytest.raises(services.PermissionDenied):
        services.release(agent_id=fleet.orchestrator.pk, user=viewer, reason="Looks fine.")
    with pytest.raises(InvalidInput):
        services.release(agent_id=fleet.orchestrator.pk, user=warden_admin, reason="  ")
    released = services.release(agent_id=fleet.orchestrator.pk, user=warden_admin, reason="Prompt fixed, tested.")
    assert (released.released_by, released.release_reason, released.released_by_label) == (
        warden_admin,
        "Prompt fixed, tested.",
        "warden-admin",
    )
    assert fleet.reload(fleet.orchestrator).status == AgentStatus.ACTIVE
    [record] = _audit("guardian.released")
    assert record["reason"] == "Prompt fixed, tested."
    fleet.configure(enabled=False)
    assert fleet.ask("mailer", "docs.read", {"path": "/x"})["decision"] == "allow"
    with pytest.raises(services.Conflict):
        services.release(agent_id=fleet.orchestrator.pk, user=warden_admin, reason="Again.")


def test_quarantine_and_release_through_the_registry_api_keep_the_record(fleet: Fleet, admin_api: Any) -> None:
    url = f"/api/v1/agents/{fleet.mailer.pk}/status"
    assert admin_api.post(url, {"status": "quarantined", "reason": "Odd calls."}, format="json").status_code == 200
    quarantine = Quarantine.objects.get(agent=fleet.mailer)
    assert (quarantine.reason, quarantine.guardian, quarantine.is_open) == ("Odd calls.", None, True)
    assert admin_api.post(url, {"status": "active", "reason": "Checked."}, format="json").status_code == 200
    quarantine.refresh_from_db()
    assert (quarantine.is_open, quarantine.release_reason) == (False, "Checked.")
    assert quarantine.released_by is not None


# Configuration ---------------------------------------------------------------------------------


def test_a_guardian_configuration_is_validated(fleet: Fleet) -> None:
    guardian = Guardian(agent=fleet.guardian.agent, scorers={"nope": 1.0, "content": 2})
    with pytest.raises(ValidationError) as invalid:
        guardian.clean()
    messages = " ".join(invalid.value.message_dict["scorers"])
    assert "Unknown scorer 'nope'" in messages
    assert "must be a number in [0, 1]" in messages
    not_a_guardian = Guardian(agent=fleet.mailer, scorers={"content": 1.0})
    with pytest.raises(ValidationError) as invalid:
        not_a_guardian.clean()
    assert "role 'guardian'" in str(invalid.value.message_dict["agent"])
    unordered = Guardian(agent=fleet.guardian.agent, flag_threshold=0.8, escalate_threshold=0.5)
    with pytest.raises(ValidationError) as invalid:
        unordered.clean()
    assert "ordered" in str(invalid.value)


def test_guardian_watching_is_by_agent_role_and_tool(fleet: Fleet) -> None:
    fleet.configure(watched_tools=["email.*"])
    assert services.guardians_for(str(fleet.mailer.pk), "email.send") == [fleet.guardian]
    assert services.guardians_for(str(fleet.mailer.pk), "docs.read") == []
    fleet.guardian.watched_agents.set([fleet.assistant])
    fleet.configure()
    assert services.guardians_for(str(fleet.mailer.pk), "email.send") == []
    assert services.guardians_for(str(fleet.assistant.pk), "email.send") == [fleet.guardian]
    # A guardian never watches itself, nor (by default) other guardians.
    fleet.guardian.watched_agents.clear()
    fleet.configure()
    assert services.guardians_for(str(fleet.guardian.agent_id), "email.send") == []


# The API ---------------------------------------------------------------------------------------


def test_the_api_lists_assessments_and_quarantines_and_releases_with_a_reason(
    fleet: Fleet, admin_api: Any, viewer: Any
) -> None:
    from rest_framework.test import APIClient

    denied = fleet.ask("mailer", "email.send", EXFILTRATION, purpose="Summarise today's alerts.")
    listed = admin_api.get("/api/v1/guardian/assessments?agent__slug=mailer&action=quarantine").json()
    [row] = listed["results"]
    assert (row["guardian"], row["agent"], row["tool_call"], row["stage"]) == (
        "sentinel",
        "mailer",
        denied["id"],
        "precheck",
    )
    assert row["scores"][0]["scorer"] == "content"
    [quarantine] = admin_api.get("/api/v1/quarantines?released_at__isnull=true").json()["results"]
    assert (quarantine["agent"], quarantine["guardian"], quarantine["is_open"]) == ("mailer", "sentinel", True)
    url = f"/api/v1/quarantines/{quarantine['id']}/release"
    # A viewer reads but may not release; a release needs a reason.
    as_viewer = APIClient()
    as_viewer.force_authenticate(viewer)
    assert as_viewer.get("/api/v1/quarantines").status_code == 200
    refused = as_viewer.post(url, {"reason": "Fine."}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    missing = admin_api.post(url, {}, format="json")
    assert (missing.status_code, missing.json()["code"]) == (400, "invalid")
    released = admin_api.post(url, {"reason": "Rotated its prompt."}, format="json")
    assert released.status_code == 200, released.content
    assert (released.json()["is_open"], released.json()["release_reason"]) == (False, "Rotated its prompt.")
    again = admin_api.post(url, {"reason": "Twice."}, format="json")
    assert (again.status_code, again.json()["code"]) == (409, "conflict")
    assert fleet.reload(fleet.mailer).status == AgentStatus.ACTIVE


# The admin -------------------------------------------------------------------------------------


def test_every_guardian_admin_page_renders_what_was_found(
    fleet: Fleet, client: Any, superuser: Any, viewer: Any, django_capture_on_commit_callbacks
) -> None:
    call_id = _read_and_report(fleet, {"reviews": [INJECTED]}, django_capture_on_commit_callbacks)
    assessment = Assessment.objects.get(tool_call_id=call_id, subject="tool_output")
    quarantine = Quarantine.objects.get(agent=fleet.mailer)
    client.force_login(superuser)
    pages = {
        "/admin/guardian/guardian/": "Sentinel",
        f"/admin/guardian/guardian/{fleet.guardian.pk}/change/": "Quarantine threshold",
        "/admin/guardian/assessment/": f">{assessment.value:.2f}<",
        f"/admin/guardian/assessment/{assessment.pk}/change/": "injected_instruction",
        "/admin/guardian/quarantine/": "Mailer",
        f"/admin/guardian/quarantine/{quarantine.pk}/change/": quarantine.reason[:40],
        "/admin/guardian/agentprofile/": "Mailer",
        f"/admin/policy/toolcall/{call_id}/change/": f">{assessment.value:.2f}<",
        f"/admin/registry/agent/{fleet.mailer.pk}/change/": "Quarantined",
    }
    for url, expected in pages.items():
        response = client.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url
    # Viewers read what guardians found and change nothing.
    client.force_login(viewer)
    assert client.get("/admin/guardian/assessment/").status_code == 200
    assert client.get("/admin/guardian/guardian/add/").status_code == 403


def test_a_scorer_that_abstains_is_left_out_of_the_assessment(fleet: Fleet) -> None:
    fleet.configure(scorers={"content": 1.0, "classifier": 1.0})
    # No purpose: the classifier's on-task model has nothing to judge the call against.
    document = fleet.ask("mailer", "docs.read", {"path": "/handbook"})
    assert document["decision"] == "allow"
    fleet.configure(watched_tools=["email.*"])
    sent = fleet.ask("mailer", "email.send", {"to": "bob@customers.example.com", "subject": "Hi", "body": "Hello."})
    [row] = sent["guardian"]
    assert row["scores"].keys() == {"content"}


def test_findings_with_evidence_lead_the_reasons_before_model_verdicts(fleet: Fleet) -> None:
    from guardian import subjects

    guardian = fleet.configure(scorers={"classifier": 1.0, "content": 1.0})
    subject = subjects.output_subject(
        agent=subjects.AgentContext(slug="mailer"),
        tool="docs.read",
        arguments={"path": "/reviews"},
        output={"reviews": [INJECTED]},
        purpose="Summarise the reviews.",
        call_id="c-1",
    )
    assert subject is not None
    judgement = services.judge(guardian, subject)
    assert {score.scorer for score in judgement.scores} == {"classifier", "content"}
    assert judgement.reasons[0]["code"] == "injected_instruction"
    assert judgement.reasons[-1]["scorer"] == "classifier"
