"""The approval queue's rules: binding to arguments, quorum, separation of duties, expiry, cancelling,
who may decide, and what the agent learns (long poll, token). Each step leaves one audit record."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import jwt
import pytest
from django.core import mail
from django.db import connections
from django.test import override_settings
from django.utils import timezone

from approvals import notifications, services
from approvals.choices import ApprovalState
from approvals.models import Approval, Vote
from approvals.tests.conftest import Escalating
from audit.models import AuditRecord
from audit.sealing import seal_pending
from audit.verification import verify_trail
from core.actors import Actor
from core.errors import Conflict, InvalidInput
from policy import services as policy_services
from policy import tokens
from policy.models import ToolCall
from policy.tests.builders import VALID_PAYMENT
from registry import services as registry_services
from registry.choices import AgentStatus, RiskTier

pytestmark = pytest.mark.django_db


def _actions(subject_id: str) -> list[str]:
    return list(AuditRecord.objects.filter(subject_id=subject_id).order_by("seq").values_list("action", flat=True))


def _get(escalating: Escalating, call_id: str, wait: str | None = None) -> Any:
    suffix = f"?wait={wait}" if wait is not None else ""
    return escalating.client().get(f"/api/v1/tool-calls/{call_id}{suffix}")


def test_an_escalated_call_opens_one_pending_approval_in_its_own_transaction(escalating, approver):
    document = escalating.ask()
    assert document["decision"] == "escalate"
    assert document["decision_token"] is None
    approval = Approval.objects.get(tool_call_id=document["id"])
    assert document["approval"] == {
        "id": str(approval.pk),
        "state": "pending",
        "due_at": approval.due_at.isoformat().replace("+00:00", "Z"),
        "required_approvals": 1,
        "approvals": 0,
        "on_expiry": "deny",
        "settled_at": None,
        "settled_by": None,
        "comment": None,
    }
    assert (approval.rule_id, approval.rule_name, approval.risk) == (escalating.rule.pk, escalating.rule.name, "high")
    assert approval.reasons[0]["code"] == "rule_escalated"
    assert approval.arguments_digest == ToolCall.objects.get(pk=document["id"]).arguments_digest
    # Due time: the default setting (the rule names none), counted from the call.
    assert approval.due_at - approval.created_at == dt.timedelta(seconds=3600)
    assert _actions(document["id"]) == ["tool_call.decided"]
    assert _actions(str(approval.pk)) == ["approval.requested"]


def test_approving_gives_the_call_its_token_and_the_agent_alone_receives_it(escalating, approver, approver_api):
    document = escalating.ask()
    approval_id = document["approval"]["id"]
    approval = services.vote(approval_id=approval_id, user=approver, verdict="approve", comment="Checked the invoice.")
    assert approval.state == ApprovalState.APPROVED

    seen = _get(escalating, document["id"]).json()
    assert (seen["decision"], seen["escalated"], seen["approval"]["state"]) == ("allow", True, "approved")
    assert seen["approval"]["settled_by"] == "approver"
    claims = tokens.verify(
        seen["decision_token"], tool="payments.transfer", arguments={**VALID_PAYMENT, "amount": 2000}
    )
    assert (claims["jti"], claims["sub"]) == (document["id"], str(escalating.agent.pk))
    # The same token every time it is fetched while valid; staff never see it.
    assert _get(escalating, document["id"]).json()["decision_token"] == seen["decision_token"]
    staff_view = approver_api.get(f"/api/v1/tool-calls/{document['id']}")
    assert staff_view.status_code == 403 or "decision_token" not in staff_view.json()
    # The tool may now run, and its result is accepted.
    reported = escalating.client().post(
        f"/api/v1/tool-calls/{document['id']}/result", {"status": "succeeded", "output": {}}, format="json"
    )
    assert reported.status_code == 200
    assert _actions(approval_id) == ["approval.requested", "approval.voted", "approval.decided"]


def test_an_approval_binds_to_the_exact_arguments_and_is_never_reused(escalating, approver):
    first = escalating.ask()
    services.vote(approval_id=first["approval"]["id"], user=approver, verdict="approve", comment="ok")
    token = _get(escalating, first["id"]).json()["decision_token"]

    changed = escalating.ask(account="GB29NWBK60161331926819")
    assert changed["decision"] == "escalate"
    assert changed["approval"]["id"] != first["approval"]["id"]
    assert changed["approval"]["state"] == "pending"
    # The first approval's token does not cover the changed arguments ...
    with pytest.raises(jwt.InvalidTokenError):
        tokens.verify(
            token,
            tool="payments.transfer",
            arguments={**VALID_PAYMENT, "amount": 2000, "account": "GB29NWBK60161331926819"},
        )
    # ... even the very same arguments again are a new call, waiting for a new decision ...
    again = escalating.ask()
    assert (again["decision"], again["approval"]["state"]) == ("escalate", "pending")
    # ... and a settled approval takes no more votes.
    with pytest.raises(services.AlreadySettled) as refused:
        services.vote(approval_id=first["approval"]["id"], user=approver, verdict="approve", comment="again")
    assert "Already approved by approver" in refused.value.message


def test_a_quorum_needs_that_many_distinct_approvers(escalating, approver, second_approver):
    policy_services.rule_update(actor=escalating.policy.actor, rule=escalating.rule, required_approvals=2)
    document = escalating.ask()
    approval_id = document["approval"]["id"]
    first = services.vote(approval_id=approval_id, user=approver, verdict="approve", comment="")
    assert first.state == ApprovalState.PENDING
    assert services.still_needed(first, list(first.votes.all()), escalating.agent.owner_id) == "1 more approval needed"
    with pytest.raises(Conflict, match="already voted"):
        services.vote(approval_id=approval_id, user=approver, verdict="approve", comment="")
    assert _get(escalating, document["id"]).json()["decision"] == "escalate"
    second = services.vote(approval_id=approval_id, user=second_approver, verdict="approve", comment="")
    assert second.state == ApprovalState.APPROVED
    assert second.settled_by_label == "second-approver"
    assert Vote.objects.filter(approval_id=approval_id).count() == 2


@override_settings(WARDEN={"APPROVAL_CRITICAL_QUORUM": 1})
def test_a_critical_agents_owner_is_never_its_only_approver(escalating, approver, second_approver):
    agent = escalating.agent
    registry_services.agent_update(
        actor=escalating.policy.actor, agent=agent, owner=approver, risk_tier=RiskTier.CRITICAL
    )
    document = escalating.ask()
    approval = Approval.objects.get(pk=document["approval"]["id"])
    assert (approval.risk, approval.required_approvals, approval.owner_may_not_decide_alone) == ("critical", 1, True)

    after_owner = services.vote(approval_id=approval.pk, user=approver, verdict="approve", comment="mine")
    assert after_owner.state == ApprovalState.PENDING
    assert "other than the agent's owner" in services.still_needed(
        after_owner, list(after_owner.votes.all()), approver.pk
    )
    assert services.vote(approval_id=approval.pk, user=second_approver, verdict="approve", comment="").state == (
        ApprovalState.APPROVED
    )


def test_critical_calls_need_the_critical_quorum_by_default(escalating, approver):
    registry_services.agent_update(actor=escalating.policy.actor, agent=escalating.agent, risk_tier=RiskTier.CRITICAL)
    assert escalating.ask()["approval"]["required_approvals"] == 2


def test_a_rejection_needs_a_comment_and_denies_the_call(escalating, approver):
    document = escalating.ask()
    approval_id = document["approval"]["id"]
    with pytest.raises(InvalidInput, match="needs a comment"):
        services.vote(approval_id=approval_id, user=approver, verdict="reject", comment="  ")
    assert Vote.objects.count() == 0
    services.vote(approval_id=approval_id, user=approver, verdict="reject", comment="Unknown beneficiary.")
    seen = _get(escalating, document["id"]).json()
    assert (seen["decision"], seen["decision_token"]) == ("deny", None)
    assert seen["reasons"][-1]["code"] == "approval_rejected"
    assert "Unknown beneficiary." in seen["reasons"][-1]["message"]
    refused = escalating.client().post(
        f"/api/v1/tool-calls/{document['id']}/result", {"status": "succeeded"}, format="json"
    )
    assert refused.status_code == 409


def test_only_approvers_decide_and_the_approver_is_the_logged_in_user(
    escalating, approver, approver_api, viewer_api, groupless_api, anon_api
):
    approval_id = escalating.ask()["approval"]["id"]
    url = f"/api/v1/approvals/{approval_id}/vote"
    body = {"verdict": "approve", "comment": "fine", "approver": "someone-else"}
    assert escalating.client().post(url, {"verdict": "approve"}, format="json").status_code == 403
    for client, status in ((viewer_api, 403), (groupless_api, 403), (anon_api, 401)):
        response = client.post(url, {"verdict": "approve"}, format="json")
        assert response.status_code in {status, 403}, response.content
        assert set(response.json()) == {"code", "message", "detail"}
    # Nothing the client sends names the approver: an unknown field is refused outright.
    assert approver_api.post(url, body, format="json").status_code == 400
    decided = approver_api.post(url, {"verdict": "approve", "comment": "fine"}, format="json")
    assert decided.status_code == 200, decided.content
    assert (decided.json()["state"], decided.json()["votes"][0]["approver"]) == ("approved", "approver")
    late = approver_api.post(url, {"verdict": "reject", "comment": "no"}, format="json")
    assert (late.status_code, late.json()["code"]) == (409, "already_settled")
    assert late.json()["detail"]["settled_by"] == "approver"


def test_approvals_api_lists_pending_items_and_agents_see_only_their_own(escalating, viewer_api):
    escalating.ask()
    listed = viewer_api.get("/api/v1/approvals?state=pending").json()
    assert listed["count"] == 1
    assert listed["results"][0]["arguments"]["amount"] == 2000
    assert escalating.client().get("/api/v1/approvals").json()["count"] == 1
    assert viewer_api.get("/api/v1/approvals/not-a-uuid").status_code == 404


def test_an_agent_withdraws_its_call_and_a_suspended_agents_calls_are_cancelled(escalating, approver):
    first = escalating.ask()
    url = f"/api/v1/approvals/{first['approval']['id']}/cancel"
    assert escalating.client().post(url, {}, format="json").status_code == 400
    cancelled = escalating.client().post(url, {"reason": "The invoice was paid by hand."}, format="json")
    assert (cancelled.status_code, cancelled.json()["state"]) == (200, "cancelled")
    assert _get(escalating, first["id"]).json()["reasons"][-1]["code"] == "approval_cancelled"

    second = escalating.ask()
    registry_services.agent_transition(actor=escalating.policy.actor, agent=escalating.agent, to=AgentStatus.SUSPENDED)
    approval = Approval.objects.get(pk=second["approval"]["id"])
    assert (approval.state, approval.settled_by_label) == ("cancelled", "agent became suspended")
    assert ToolCall.objects.get(pk=second["id"]).decision == "deny"
    assert _actions(str(approval.pk))[-1] == "approval.cancelled"


def test_a_suspended_agents_call_cannot_be_approved(escalating, approver):
    document = escalating.ask()
    # A status change that bypasses the cascade (a raw update) is still caught at approval time.
    type(escalating.agent).objects.filter(pk=escalating.agent.pk).update(status=AgentStatus.SUSPENDED)
    with pytest.raises(Conflict, match="suspended"):
        services.vote(approval_id=document["approval"]["id"], user=approver, verdict="approve", comment="")


def test_expiry_applies_the_rules_effect_at_the_due_time(escalating, approver):
    denied = escalating.ask()
    due = Approval.objects.get(pk=denied["approval"]["id"]).due_at
    assert services.expire_due(now=due - dt.timedelta(seconds=1)) == 0
    assert services.expire_due(now=due) == 1
    expired = Approval.objects.get(pk=denied["approval"]["id"])
    assert (expired.state, expired.settled_at) == ("expired", due)
    seen = _get(escalating, denied["id"]).json()
    assert (seen["decision"], seen["reasons"][-1]["code"]) == ("deny", "approval_expired")
    with pytest.raises(services.AlreadySettled):
        services.vote(approval_id=expired.pk, user=approver, verdict="approve", comment="too late")

    policy_services.rule_update(
        actor=escalating.policy.actor, rule=escalating.rule, on_expiry="allow", approval_timeout_seconds=60
    )
    allowed = escalating.ask()
    approval = Approval.objects.get(pk=allowed["approval"]["id"])
    assert approval.due_at - approval.created_at == dt.timedelta(seconds=60)
    # Past the due time but not yet expired by the task: nobody can still approve it.
    overdue = timezone.now() - dt.timedelta(seconds=1)
    Approval.objects.filter(pk=approval.pk).update(due_at=overdue)
    with pytest.raises(services.AlreadySettled, match="past its due time"):
        services.vote(approval_id=approval.pk, user=approver, verdict="approve", comment="")
    assert services.expire_due(now=overdue + dt.timedelta(seconds=5)) == 1
    seen = _get(escalating, allowed["id"]).json()
    assert seen["decision"] == "allow"
    assert seen["decision_token"]
    assert seen["reasons"][-1]["detail"]["on_expiry"] == "allow"


def test_approvers_are_mailed_when_an_item_arrives_and_before_it_is_due(
    escalating, approver, second_approver, viewer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        document = escalating.ask()
    assert len(mail.outbox) == 1
    arrival = mail.outbox[0]
    assert sorted(arrival.to) == ["approver@example.com", "second@example.org"]
    assert "payments.transfer by payer" in arrival.subject
    assert f"/approvals/{document['approval']['id']}/" in arrival.body
    approval = Approval.objects.get(pk=document["approval"]["id"])
    assert approval.notified_at is not None
    assert notifications.send_arrival(approval.pk) is False  # once only

    early = approval.due_at - dt.timedelta(minutes=30)
    assert notifications.send_reminders(now=early) == 0
    soon = approval.due_at - dt.timedelta(minutes=5)
    assert notifications.send_reminders(now=soon) == 1
    assert notifications.send_reminders(now=soon) == 0
    assert "Due in 5 min" in mail.outbox[1].subject
    assert _actions(str(approval.pk)) == ["approval.requested", "approval.notified", "approval.reminder_sent"]


def test_a_missed_arrival_notice_is_caught_up_by_the_periodic_task(escalating, approver):
    document = escalating.ask()  # no commit callbacks run: as if the broker had been down
    assert mail.outbox == []
    later = timezone.now() + dt.timedelta(minutes=1)
    assert notifications.send_missed_arrivals(now=later) == 1
    assert Approval.objects.get(pk=document["approval"]["id"]).notified_at is not None


@pytest.mark.parametrize("wait", ["31", "-1", "soon", "nan"])
def test_a_long_poll_is_bounded_at_thirty_seconds(escalating, wait):
    document = escalating.ask()
    response = _get(escalating, document["id"], wait)
    assert (response.status_code, response.json()["code"]) == (400, "invalid")
    assert "wait" in response.json()["detail"]


def test_a_long_poll_on_an_undecided_call_returns_when_its_time_is_up(escalating):
    document = escalating.ask()
    started = time.monotonic()
    response = _get(escalating, document["id"], "0.6")
    assert 0.5 <= time.monotonic() - started < 5
    assert (response.status_code, response.json()["decision"]) == (200, "escalate")


def test_every_step_is_in_the_trail_and_the_trail_verifies(escalating, approver, second_approver):
    policy_services.rule_update(actor=escalating.policy.actor, rule=escalating.rule, required_approvals=2)
    document = escalating.ask()
    approval_id = document["approval"]["id"]
    services.vote(approval_id=approval_id, user=approver, verdict="approve", comment="one")
    services.vote(approval_id=approval_id, user=second_approver, verdict="approve", comment="two")
    records = AuditRecord.objects.filter(subject_id=approval_id).order_by("seq")
    assert [(r.action, r.actor_kind, r.actor_label) for r in records] == [
        ("approval.requested", "agent", "payer"),
        ("approval.voted", "user", "approver"),
        ("approval.voted", "user", "second-approver"),
        ("approval.decided", "user", "second-approver"),
    ]
    seal_pending()
    assert verify_trail().ok


@pytest.mark.django_db(transaction=True)
def test_a_long_poll_returns_allow_with_a_token_as_soon_as_an_approver_decides(escalating, tx_approvers):
    approver, _ = tx_approvers
    document = escalating.ask()

    def approve_soon() -> None:
        time.sleep(0.4)
        try:
            services.vote(approval_id=document["approval"]["id"], user=approver, verdict="approve", comment="go")
        finally:
            connections.close_all()

    thread = threading.Thread(target=approve_soon)
    started = time.monotonic()
    thread.start()
    response = _get(escalating, document["id"], "20")
    elapsed = time.monotonic() - started
    thread.join()
    assert elapsed < 5
    assert (response.json()["decision"], bool(response.json()["decision_token"])) == ("allow", True)


@pytest.mark.skipif(
    connections["default"].vendor != "postgresql",
    reason="the race needs real concurrent transactions (SQLite's in-memory test database locks whole tables)",
)
@pytest.mark.django_db(transaction=True)
def test_two_approvers_at_once_exactly_one_decision_wins(escalating, tx_approvers):
    """The race: threads vote on the same approval together; one settles it, the other is told who did.

    On PostgreSQL the approval row lock orders them (SELECT … FOR UPDATE), and the compare-and-set on
    `pending` would catch a settlement that slipped past it.
    """
    approver, second_approver = tx_approvers
    outcomes: dict[str, Any] = {}
    for round_ in range(5):
        document = escalating.ask(amount=1001 + round_)
        approval_id = document["approval"]["id"]
        barrier = threading.Barrier(2)

        def decide(
            user: Any, verdict: str, approval_id: str = approval_id, barrier: threading.Barrier = barrier
        ) -> None:
            barrier.wait()
            try:
                outcomes[user.username] = services.vote(
                    approval_id=approval_id, user=user, verdict=verdict, comment=f"{verdict} by {user.username}"
                ).state
            except services.AlreadySettled as refused:
                outcomes[user.username] = refused
            finally:
                connections.close_all()

        threads = [
            threading.Thread(target=decide, args=(approver, "approve")),
            threading.Thread(target=decide, args=(second_approver, "reject")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        approval = Approval.objects.get(pk=approval_id)
        winners = [name for name, outcome in outcomes.items() if isinstance(outcome, str)]
        losers = [outcome for outcome in outcomes.values() if isinstance(outcome, services.AlreadySettled)]
        assert len(winners) == 1, outcomes
        assert len(losers) == 1, outcomes
        assert approval.settled_by_label == winners[0]
        assert approval.settled_by_label in losers[0].message
        assert Vote.objects.filter(approval_id=approval_id).count() == 1
        decided = AuditRecord.objects.filter(subject_id=approval_id, action="approval.decided").count()
        assert decided == 1
        call = ToolCall.objects.get(pk=document["id"])
        assert call.decision == ("allow" if approval.state == "approved" else "deny")
        outcomes.clear()


def test_a_settled_call_cannot_be_settled_again_by_the_policy_layer(escalating, approver):
    from policy.decisions import settle_escalation

    document = escalating.ask()
    services.vote(approval_id=document["approval"]["id"], user=approver, verdict="approve", comment="")
    from django.db import transaction

    with pytest.raises(Conflict), transaction.atomic():
        settle_escalation(document["id"], outcome="deny")


def test_cancel_needs_a_reason_and_an_approver(escalating, viewer, approver):
    approval_id = escalating.ask()["approval"]["id"]
    with pytest.raises(InvalidInput):
        services.cancel(approval_id=approval_id, actor=Actor.from_user(approver), reason=" ", user=approver)
    with pytest.raises(services.PermissionDenied):
        services.cancel(approval_id=approval_id, actor=Actor.from_user(viewer), reason="no", user=viewer)
