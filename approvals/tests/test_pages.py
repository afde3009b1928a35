"""The approval queue pages (/approvals/) and the approvals admin, through Django's test client.

Who may read the queue and who may decide, what a card shows (sensitive values masked), voting
with post/redirect/get and its messages (a race lost to another approver is a warning that names
them), the decided tab, the counts in the title and the navigation, and a bounded query count.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.messages import constants as message_levels
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals import services
from approvals.choices import ApprovalState
from approvals.models import Approval, Vote
from approvals.tests.conftest import Escalating
from core.groups import VIEWERS
from policy import services as policy_services
from policy.models import ToolCall
from policy.tests.builders import PAYMENT_SCHEMA, VALID_PAYMENT
from registry import services as registry_services
from registry.choices import AgentStatus
from registry.tests.factories import AgentFactory, UserFactory

pytestmark = pytest.mark.django_db

QUEUE = "/approvals/"
MARKER = "•••••• (sensitive)"


def _vote_url(approval_id: Any) -> str:
    return f"/approvals/{approval_id}/vote"


def _detail_url(approval_id: Any) -> str:
    return f"/approvals/{approval_id}/"


def _page(client: Any, user: Any, url: str = QUEUE, **params: str) -> Any:
    client.force_login(user)
    response = client.get(url, params)
    assert response.status_code == 200
    return response


def _messages(response: Any) -> list[tuple[int, str]]:
    return [(message.level, str(message)) for message in response.context["messages"]]


def _card_ids(response: Any) -> list[str]:
    return [str(item.approval.pk) for item in response.context["items"]]


# Who may read it, who may decide ------------------------------------------------------------


def test_anonymous_people_are_sent_to_the_login(client, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    response = client.get(QUEUE)
    assert (response.status_code, response["Location"]) == (302, "/admin/login/?next=/approvals/")
    assert client.get(_detail_url(approval_id)).status_code == 302
    assert client.post(_vote_url(approval_id), {"verdict": "approve"}).status_code == 302
    assert Approval.objects.get(pk=approval_id).state == ApprovalState.PENDING


@pytest.mark.parametrize("user_fixture", ["groupless_user", "non_staff_user"])
def test_people_without_the_view_permission_are_refused(client, request, user_fixture, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    client.force_login(request.getfixturevalue(user_fixture))
    assert client.get(QUEUE).status_code == 403
    assert client.get(_detail_url(approval_id)).status_code == 403
    assert client.post(_vote_url(approval_id), {"verdict": "approve", "comment": "ok"}).status_code == 403
    assert 'id="approvals-badge"' not in client.get("/admin/password_change/").content.decode()


def test_viewers_read_the_queue_but_get_no_vote_form(client, viewer, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    html = _page(client, viewer).content.decode()
    assert f'id="approval-{approval_id}"' in html
    assert "wd-vote-form" not in html
    assert "members of <em>approvers</em> decide" in html
    detail = _page(client, viewer, _detail_url(approval_id)).content.decode()
    assert "wd-vote-form" not in detail
    assert client.post(_vote_url(approval_id), {"verdict": "approve", "comment": "ok"}).status_code == 403
    assert not Vote.objects.exists()


def test_voting_takes_a_post(client, approver, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    client.force_login(approver)
    assert client.get(_vote_url(approval_id)).status_code == 405
    assert client.put(_vote_url(approval_id)).status_code == 405


def test_the_vote_form_is_protected_against_cross_site_requests(approver, escalating):
    from django.test import Client

    approval_id = escalating.ask()["approval"]["id"]
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(approver)
    assert guarded.post(_vote_url(approval_id), {"verdict": "approve", "comment": "ok"}).status_code == 403
    assert Approval.objects.get(pk=approval_id).state == ApprovalState.PENDING
    page = guarded.get(QUEUE).content.decode()
    assert page.count('name="csrfmiddlewaretoken"') >= 1


# What a card shows ----------------------------------------------------------------------------


def test_a_card_shows_what_the_decision_needs(client, approver, escalating):
    escalating.ask(amount=500)  # allowed: one of the agent's recent decisions
    document = escalating.ask()
    approval_id = document["approval"]["id"]
    response = _page(client, approver)
    html = response.content.decode()
    (item,) = response.context["items"]
    card = html[html.index(f'id="approval-{approval_id}"') :]

    assert '<code class="wd-tool">payments.transfer</code>' in card
    assert '<span class="wd-agent-slug">payer</span>' in card
    assert escalating.agent.owner.username in card
    assert "wd-badge wd-risk-high" in card  # the tool's risk (the agent's tier is medium)
    assert f'<span class="wd-badge wd-risk-{escalating.agent.risk_tier}">' in card
    assert "&quot;amount&quot;: 2000," in card  # indented JSON, escaped
    assert '<code class="wd-code">rule_escalated</code>' in card
    assert "Payments over 1,000 EUR need a human." in card
    assert "<strong>big payments need a human</strong>" in card
    assert re.search(r"Due in (59|60) min", card)
    assert "0 of 1 approval</strong>" in card
    assert "1 more approval needed" in card
    assert "No votes yet." in card
    assert "Guardian scores" not in card  # nothing scored it (no guardian app yet)
    assert [call.decision for call in item.recent_calls] == ["allow"]  # its own call is left out
    assert "wd-decision-allow" in card
    assert f'action="/approvals/{approval_id}/vote"' in card
    assert f'<label for="id_comment_{approval_id}">Comment</label>' in card
    assert f'aria-describedby="id_comment_{approval_id}_helptext"' in card


def test_pending_items_are_due_soonest_first_then_riskiest_first(client, approver, escalating):
    from django.utils import timezone

    ids = [escalating.ask(amount=amount)["approval"]["id"] for amount in (2000, 3000, 4000)]
    due = timezone.now().replace(microsecond=0) + timezone.timedelta(minutes=30)
    Approval.objects.filter(pk=ids[0]).update(due_at=due + timezone.timedelta(minutes=5))
    Approval.objects.filter(pk=ids[1]).update(due_at=due, risk="medium", risk_rank=2)
    Approval.objects.filter(pk=ids[2]).update(due_at=due, risk="critical", risk_rank=0)
    assert _card_ids(_page(client, approver)) == [ids[2], ids[1], ids[0]]


def test_sensitive_arguments_are_masked_on_the_page_and_in_the_admin(client, approver, superuser, escalating):
    schema = {
        **PAYMENT_SCHEMA,
        "properties": {
            **PAYMENT_SCHEMA["properties"],
            "reason": {**PAYMENT_SCHEMA["properties"]["reason"], "x-warden-sensitive": True},
        },
    }
    policy_services.contract_create(
        actor=escalating.policy.actor, tool="payments.transfer", input_schema=schema, activate=True
    )
    secret = "Refund for patient 4711-HIV"
    document = escalating.ask(reason=secret)
    stored = ToolCall.objects.get(pk=document["id"]).arguments["reason"]["$sensitive"]

    for user, url in [
        (approver, QUEUE),
        (approver, _detail_url(document["approval"]["id"])),
        (superuser, f"/admin/approvals/approval/{document['approval']['id']}/change/"),
    ]:
        html = _page(client, user, url).content.decode()
        assert f"&quot;reason&quot;: &quot;{MARKER}&quot;" in html, url
        assert secret not in html
        assert stored["digest"] not in html
        assert stored["salt"] not in html
        assert "$sensitive" not in html


def test_the_detail_page_shows_the_record_and_links_the_rule(client, approver, escalating):
    document = escalating.ask()
    approval = Approval.objects.get(pk=document["approval"]["id"])
    html = _page(client, approver, _detail_url(approval.pk)).content.decode()
    assert "<title>payments.transfer by payer | Approvals (1 pending) | Warden</title>" in html
    assert f'<code id="tool-call-id">{document["id"]}</code>' in html
    assert f'<code id="arguments-digest">{approval.arguments_digest}</code>' in html
    assert f'href="/admin/policy/rule/{escalating.rule.pk}/change/"' in html
    assert "wd-vote-form" in html
    assert client.get("/approvals/00000000-0000-0000-0000-000000000000/").status_code == 404


# Voting -------------------------------------------------------------------------------------


def test_approving_settles_the_call_and_says_so(client, approver, escalating):
    document = escalating.ask()
    approval_id = document["approval"]["id"]
    client.force_login(approver)
    response = client.post(_vote_url(approval_id), {"verdict": "approve", "comment": "Invoice checked.", "next": QUEUE})
    assert (response.status_code, response["Location"]) == (302, QUEUE)

    after = client.get(response["Location"])
    assert after.status_code == 200
    assert _messages(after) == [
        (message_levels.SUCCESS, "Approved: payments.transfer by payer. The agent may now make the call.")
    ]
    assert _card_ids(after) == []
    assert "<title>Approvals (0 pending) | Warden</title>" in after.content.decode()
    approval = Approval.objects.get(pk=approval_id)
    assert (approval.state, approval.settled_by, approval.comment) == (
        ApprovalState.APPROVED,
        approver,
        "Invoice checked.",
    )
    call = ToolCall.objects.get(pk=document["id"])
    assert call.decision == "allow"


def test_an_approval_short_of_the_quorum_says_how_many_more(client, approver, second_approver, escalating):
    policy_services.rule_update(actor=escalating.policy.actor, rule=escalating.rule, required_approvals=2)
    approval_id = escalating.ask()["approval"]["id"]
    client.force_login(approver)
    response = client.post(_vote_url(approval_id), {"verdict": "approve", "comment": "", "next": QUEUE}, follow=True)
    assert response.status_code == 200
    assert _messages(response) == [(message_levels.SUCCESS, "Your approval is recorded; 1 more approval needed.")]
    html = response.content.decode()
    assert "1 of 2 approvals</strong>" in html
    assert "You approved this" in html
    assert "wd-vote-form" not in html  # one vote each
    assert '<span class="wd-badge wd-verdict-approve">Approve</span>' in html

    again = client.post(_vote_url(approval_id), {"verdict": "approve", "comment": "", "next": QUEUE}, follow=True)
    assert _messages(again) == [(message_levels.WARNING, "You already voted on this approval.")]

    other = _page(client, second_approver).content.decode()
    assert "wd-vote-form" in other
    assert "<strong>approver</strong>" in other


def test_a_rejection_without_a_comment_is_refused_beside_the_field(client, approver, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    client.force_login(approver)
    response = client.post(_vote_url(approval_id), {"verdict": "reject", "comment": "   ", "next": QUEUE})
    assert response.status_code == 200
    html = response.content.decode()
    error = f'<p class="wd-field-error" id="id_comment_{approval_id}_error" role="alert">'
    assert f"{error}Say why: a rejection needs a comment.</p>" in html
    assert 'aria-invalid="true"' in html
    assert 'id="vote-refused"' in html
    assert f'name="next" value="{QUEUE}"' in html  # still goes back to the queue once it is fixed
    assert not Vote.objects.exists()
    assert Approval.objects.get(pk=approval_id).state == ApprovalState.PENDING


def test_a_refused_vote_keeps_the_comment_as_typed(client, approver, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    client.force_login(approver)
    typed = "Too long <b>really</b> " + "x" * services.MAX_COMMENT
    response = client.post(_vote_url(approval_id), {"verdict": "reject", "comment": typed})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ensure this value has at most 2000 characters" in html
    assert "Too long &lt;b&gt;really&lt;/b&gt; xxx" in html
    assert not Vote.objects.exists()


def test_rejecting_with_a_comment_denies_the_call(client, approver, escalating):
    document = escalating.ask()
    approval_id = document["approval"]["id"]
    client.force_login(approver)
    response = client.post(
        _vote_url(approval_id), {"verdict": "reject", "comment": "Not our supplier.", "next": _detail_url(approval_id)}
    )
    assert response["Location"] == _detail_url(approval_id)
    after = client.get(response["Location"])
    assert _messages(after) == [
        (message_levels.SUCCESS, "Rejected: payments.transfer by payer. The agent is told why.")
    ]
    html = after.content.decode()
    assert '<span class="wd-badge wd-state wd-state-rejected">Rejected</span>' in html
    assert "Rejected by <strong>approver</strong>" in html
    assert "wd-vote-form" not in html
    assert Approval.objects.get(pk=approval_id).state == ApprovalState.REJECTED
    assert ToolCall.objects.get(pk=document["id"]).decision == "deny"


def test_losing_the_race_is_a_warning_naming_who_decided(client, approver, second_approver, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    client.force_login(approver)
    assert "wd-vote-form" in client.get(QUEUE).content.decode()  # the page approver has open
    services.vote(approval_id=approval_id, user=second_approver, verdict="approve", comment="Paid it myself.")

    response = client.post(_vote_url(approval_id), {"verdict": "reject", "comment": "Looks wrong.", "next": QUEUE})
    assert (response.status_code, response["Location"]) == (302, QUEUE)
    after = client.get(QUEUE)
    assert after.status_code == 200
    ((level, text),) = _messages(after)
    assert level == message_levels.WARNING
    assert text.startswith("Already approved by second-approver at ")
    assert '<li class="warning">Already approved by second-approver at' in after.content.decode()
    assert Vote.objects.filter(approval_id=approval_id).count() == 1


def test_an_unknown_approval_or_a_foreign_next_is_handled(client, approver, escalating):
    client.force_login(approver)
    missing = client.post(_vote_url("00000000-0000-0000-0000-000000000000"), {"verdict": "approve"})
    assert missing.status_code == 404
    approval_id = escalating.ask()["approval"]["id"]
    response = client.post(
        _vote_url(approval_id), {"verdict": "approve", "comment": "ok", "next": "https://evil.example/approvals/"}
    )
    assert response["Location"] == _detail_url(approval_id)


def test_an_inactive_agent_cannot_be_approved(client, approver, escalating):
    approval_id = escalating.ask()["approval"]["id"]
    # Suspending cancels its pending approvals, so the form is gone; a stale page posts anyway.
    registry_services.agent_transition(actor=escalating.policy.actor, agent=escalating.agent, to=AgentStatus.SUSPENDED)
    client.force_login(approver)
    response = client.post(_vote_url(approval_id), {"verdict": "approve", "comment": "ok", "next": QUEUE}, follow=True)
    assert response.status_code == 200
    ((level, text),) = _messages(response)
    assert level == message_levels.WARNING
    assert text.startswith("Already cancelled by agent became suspended")


# Counts, tabs, filters ----------------------------------------------------------------------


def test_the_title_and_the_navigation_badge_count_pending_items(client, approver, viewer, escalating):
    for amount in (2000, 3000):
        escalating.ask(amount=amount)
    html = _page(client, approver).content.decode()
    assert "<title>Approvals (2 pending) | Warden</title>" in html
    assert re.search(
        r'<a href="/approvals/" class="wd-approvals-link"[^>]*>Approvals <span id="approvals-badge"[^>]*>2</span></a>',
        html,
    )
    assert 'id="pending-count">2<' in html
    # On every admin page, for everyone who may read the queue; the audit trail link stays.
    index = _page(client, viewer, "/admin/").content.decode()
    assert re.search(r'id="approvals-badge"[^>]*>2</span>', index)
    client.force_login(UserFactory(username="all-seeing", is_superuser=True))
    assert 'class="wd-trail-link">Audit trail</a>' in client.get("/admin/").content.decode()


def test_the_decided_tab_lists_who_decided_when_and_why(client, approver, second_approver, escalating):
    first = escalating.ask(amount=2000)["approval"]["id"]
    second = escalating.ask(amount=3000)["approval"]["id"]
    waiting = escalating.ask(amount=4000)["approval"]["id"]
    services.vote(approval_id=first, user=approver, verdict="approve", comment="Known supplier.")
    services.vote(approval_id=second, user=second_approver, verdict="reject", comment="Duplicate invoice.")

    response = _page(client, approver, state="decided")
    html = response.content.decode()
    assert [str(approval.pk) for approval in response.context["page"].object_list] == [second, first]
    assert "<title>Decided | Approvals (1 pending) | Warden</title>" in html
    assert 'aria-current="page">Decided</a>' in html
    row = html[html.index(f'id="decided-{second}"') :]
    row = row[: row.index("</tr>")]
    assert "wd-state-rejected" in row
    assert '<td class="wd-who">second-approver</td>' in row
    assert "Duplicate invoice." in row
    settled_at = Approval.objects.get(pk=second).settled_at
    assert f'<time datetime="{settled_at:%Y-%m-%dT%H:%M:%S}' in row
    assert f'href="/approvals/{second}/"' in row
    assert waiting not in html.split('id="decided"', 1)[1]
    assert "Decided 1\u20132 of 2" in html  # en dash


def test_the_decided_tab_has_25_a_page(client, approver, escalating):
    from approvals.views import PAGE_SIZE

    for number in range(PAGE_SIZE + 2):
        approval_id = escalating.ask(amount=1001 + number)["approval"]["id"]
        services.vote(approval_id=approval_id, user=approver, verdict="approve", comment=f"ok {number}")
    first = _page(client, approver, state="decided")
    assert len(first.context["page"].object_list) == PAGE_SIZE
    second = _page(client, approver, state="decided", page="2")
    assert len(second.context["page"].object_list) == 2
    html = second.content.decode()
    assert "Page 2 of 2" in html
    assert 'href="?state=decided&amp;page=1"' in html


def test_filters_narrow_the_queue_by_agent_and_tool(client, approver, escalating, live_policy_other):
    mine = escalating.ask()["approval"]["id"]
    theirs = live_policy_other()["approval"]["id"]
    assert set(_card_ids(_page(client, approver))) == {mine, theirs}
    assert _card_ids(_page(client, approver, agent="payer")) == [mine]
    assert _card_ids(_page(client, approver, agent="payer-two", tool="payments.transfer")) == [theirs]
    assert _card_ids(_page(client, approver, tool="crm.read")) == []
    refused = _page(client, approver, agent="not a slug!")
    assert _card_ids(refused) == []
    assert "Agent: Enter a valid “slug”" in refused.content.decode()
    # The count in the title is the whole queue's, whatever the filter.
    assert "<title>Approvals (2 pending) | Warden</title>" in _page(client, approver, agent="payer").content.decode()


# Cost ---------------------------------------------------------------------------------------


@pytest.fixture
def live_policy_other(escalating: Escalating) -> Any:
    """A second active agent, `payer-two`, with its own key and the same grant; returns its `ask`."""
    actor = escalating.policy.actor
    agent = AgentFactory(slug="payer-two", status=AgentStatus.ACTIVE)
    registry_services.grant_create(
        actor=actor, agent=agent, tool="payments.transfer", constraints={"amount": {"maximum": 5000}}, reason="Pays."
    )
    key = registry_services.credential_issue(actor=actor, agent=agent).key

    def ask(amount: int = 2000) -> dict[str, Any]:
        response = escalating.policy.client(key).post(
            "/api/v1/tool-calls",
            {"tool": "payments.transfer", "arguments": {**VALID_PAYMENT, "amount": amount}},
            format="json",
        )
        assert response.status_code == 200, response.content
        return dict(response.json())

    return ask


def _queue_queries(client: Any) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(QUEUE)
    assert response.status_code == 200
    return len(queries)


def test_the_queue_costs_the_same_queries_for_3_or_12_items(
    client, approver, second_approver, escalating, live_policy_other, django_assert_max_num_queries
):
    policy_services.rule_update(actor=escalating.policy.actor, rule=escalating.rule, required_approvals=2)
    for number in range(2):
        escalating.ask(amount=1500 + number)
    voted = live_policy_other()["approval"]["id"]
    services.vote(approval_id=voted, user=second_approver, verdict="approve", comment="one of two")
    client.force_login(approver)
    # Session, user, permissions (2), the page's count (also the title's and the badge's), the
    # approvals with agent, owner, call and rule, their votes with voters, the agents' recent calls,
    # the guardians' assessments of the calls.
    with django_assert_max_num_queries(9):
        response = client.get(QUEUE)
    assert len(response.context["items"]) == 3
    three = _queue_queries(client)

    for number in range(5):
        escalating.ask(amount=2500 + number)
        services.vote(
            approval_id=live_policy_other(amount=2500 + number)["approval"]["id"],
            user=second_approver,
            verdict="approve",
            comment="",
        )
    with django_assert_max_num_queries(9):
        response = client.get(QUEUE)
    assert len(response.context["items"]) == 13
    assert _queue_queries(client) == three
    assert all(len(item.recent_calls) == 5 for item in response.context["items"])


# The admin ----------------------------------------------------------------------------------


def test_the_admin_shows_approvals_votes_and_deliveries_read_only(client, approver, viewer, escalating):
    policy_services.rule_update(actor=escalating.policy.actor, rule=escalating.rule, required_approvals=2)
    approval_id = escalating.ask()["approval"]["id"]
    services.vote(approval_id=approval_id, user=approver, verdict="approve", comment="Looks fine.")
    client.force_login(viewer)
    listing = client.get("/admin/approvals/approval/")
    assert listing.status_code == 200
    assert '<span class="wd-badge wd-state-pending">Pending</span>' in listing.content.decode()
    page = client.get(f"/admin/approvals/approval/{approval_id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Looks fine." in html  # the vote, inline
    assert f'href="/approvals/{approval_id}/"' in html
    assert 'name="_save"' not in html
    assert client.get("/admin/approvals/approval/add/").status_code == 403
    assert client.get(f"/admin/approvals/approval/{approval_id}/delete/").status_code == 403
    for path in ["/admin/approvals/webhook/", "/admin/approvals/delivery/"]:
        assert client.get(path).status_code == 200
        assert client.get(path + "add/").status_code == 403
    assert client.get("/admin/approvals/vote/").status_code == 404  # votes live inside their approval


def test_viewers_group_reads_the_queue(db):
    """The permission the pages check is the one the viewers group holds (migration 0002)."""
    viewer = UserFactory(username="another-viewer", groups=[VIEWERS])
    assert viewer.has_perm("approvals.view_approval")
    assert not services.can_decide(viewer)
