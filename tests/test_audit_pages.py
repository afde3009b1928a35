"""The audit trail page (/audit/) and the audit admin, through Django's test client.

Who may read the trail, how the filters narrow it, and that sensitive values never reach the
page as their salted digests.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction

from audit import sensitive
from audit import services as audit
from audit.models import AuditRecord, Block
from audit.sealing import seal_pending
from core.actors import Actor
from core.groups import AUDITORS
from policy import services as policy_services
from policy.tests.builders import VALID_PAYMENT
from policy.tests.conftest import LivePolicy, live_policy  # noqa: F401  (fixture)
from registry import services as registry_services
from registry.choices import AgentStatus
from registry.models import Agent
from registry.tests.factories import AgentFactory, ToolFactory, UserFactory
from telemetry.views import PAGE_SIZE

pytestmark = pytest.mark.django_db

URL = "/audit/"
DECIDE = "/api/v1/tool-calls"
MARKER = "•••••• (sensitive)"
CONTACT_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["contact_id"],
    "properties": {
        "contact_id": {"type": "string", "maxLength": 20},
        "national_id": {"type": "string", "maxLength": 20, "x-warden-sensitive": True},
    },
}
OLD = dt.datetime(2024, 6, 1, 9, 30, tzinfo=dt.UTC)


@dataclass
class Trail:
    """What `trail` wrote: two agents' decisions, a human's old change, one record left pending."""

    payer: Agent
    reader: Agent
    old: AuditRecord  # by user alice, in 2024, with a masked value in its payload
    pending: AuditRecord
    masked: dict[str, Any]


@pytest.fixture
def trail(live_policy: LivePolicy) -> Trail:  # noqa: F811
    """Decisions by `payer` (payments.transfer) and `reader` (crm.read, a sensitive field), sealed."""
    actor = live_policy.actor
    crm = ToolFactory(name="crm.read")
    policy_services.contract_create(actor=actor, tool=crm, input_schema=CONTACT_SCHEMA, activate=True)
    reader = AgentFactory(slug="reader", status=AgentStatus.ACTIVE)
    registry_services.grant_create(actor=actor, agent=reader, tool="crm.read", reason="Looks up customers.")
    reader_key = registry_services.credential_issue(actor=actor, agent=reader).key

    payer_api, reader_api = live_policy.client(), live_policy.client(reader_key)
    assert _decide(payer_api, "payments.transfer", VALID_PAYMENT) == "allow"
    assert _decide(payer_api, "payments.transfer", {**VALID_PAYMENT, "amount": 9000}) == "deny"
    assert _decide(reader_api, "crm.read", {"contact_id": "C-1001", "national_id": "756.1234.5678.97"}) == "allow"

    masked = sensitive.mask_value("hunter2")
    with transaction.atomic():
        old = audit.append(
            actor=Actor(kind="user", id="42", label="alice"),
            action="grant.changed",
            subject_type="grant",
            subject_id="7",
            agent_id=str(live_policy.agent.pk),
            tool="payments.transfer",
            payload={"reason": "Raised the limit.", "approval_code": masked},
            at=OLD,
        )
    seal_pending(everything=True)
    assert _decide(payer_api, "payments.transfer", VALID_PAYMENT) == "allow"
    pending = AuditRecord.objects.filter(seal__isnull=True).get()
    return Trail(payer=live_policy.agent, reader=reader, old=old, pending=pending, masked=masked)


def _decide(api: Any, tool: str, arguments: dict[str, Any]) -> str:
    response = api.post(DECIDE, {"tool": tool, "arguments": arguments}, format="json")
    assert response.status_code == 200, response.content
    return str(response.json()["decision"])


def _seqs(response: Any) -> list[int]:
    return [row.record.seq for row in response.context["rows"]]


def _get(client: Any, user: Any, **params: str) -> Any:
    client.force_login(user)
    response = client.get(URL, params)
    assert response.status_code == 200
    return response


# Who may read it -----------------------------------------------------------------------------


def test_anonymous_people_are_sent_to_the_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/audit/"


@pytest.mark.parametrize("user_fixture", ["viewer", "approver", "groupless_user"])
def test_people_without_the_audit_permission_are_refused(client, request, user_fixture):
    client.force_login(request.getfixturevalue(user_fixture))
    assert client.get(URL).status_code == 403


def test_a_non_staff_holder_of_the_permission_is_refused(client, db):
    client.force_login(UserFactory(username="auditor-not-staff", is_staff=False, groups=[AUDITORS]))
    assert client.get(URL).status_code == 403


@pytest.mark.parametrize("user_fixture", ["auditor", "warden_admin", "superuser"])
def test_auditors_and_warden_admins_read_the_trail(client, request, user_fixture, trail):
    response = _get(client, request.getfixturevalue(user_fixture))
    html = response.content.decode()
    assert _seqs(response) == list(AuditRecord.objects.order_by("-seq").values_list("seq", flat=True))
    assert '<div class="breadcrumbs"><a href="/admin/">Home</a> \u203a Audit trail</div>' in html
    assert "admin/css/base.css" in html
    assert "telemetry/audit-verify.js" in html


def test_the_header_shows_totals_and_the_chain_head(client, auditor, trail):
    response = _get(client, auditor)
    html = response.content.decode()
    head = Block.objects.order_by("-height").first()
    assert re.search(rf'id="stat-records">{AuditRecord.objects.count()}<', html)
    assert re.search(rf'id="stat-blocks">{Block.objects.count()}<', html)
    assert re.search(r'id="stat-pending">1<', html)
    assert f'title="{head.block_hash}">{head.block_hash[:16]}…</code>' in html


def test_sealed_records_have_a_verify_button_and_pending_ones_a_badge(client, auditor, trail):
    html = _get(client, auditor).content.decode()
    sealed = AuditRecord.objects.exclude(seq=trail.pending.seq).count()
    assert html.count('class="button wd-verify"') == sealed
    assert f'data-proof-url="/api/v1/audit/records/{trail.old.seq}/proof"' in html
    assert f'data-proof-url="/api/v1/audit/records/{trail.pending.seq}/proof"' not in html
    assert html.count('<span class="wd-badge wd-seal-pending">pending</span>') == 1


def test_agent_ids_show_as_slugs(client, auditor, trail, django_assert_max_num_queries):
    client.force_login(auditor)
    # Session, user, permissions (2), totals (records, blocks, pending: high water, above it,
    # the last block, late ones; the head), page count, rows, agent slugs, the pending-approvals
    # badge: 15, however many rows the page shows.
    with django_assert_max_num_queries(15):
        response = client.get(URL)
    rows = {row.record.seq: row for row in response.context["rows"]}
    assert rows[trail.pending.seq].agent_slug == "payer"
    reader_rows = [row for row in rows.values() if row.record.agent_id == str(trail.reader.pk)]
    assert reader_rows
    assert all(row.agent_slug == "reader" for row in reader_rows)


# Filters ------------------------------------------------------------------------------------


def test_filter_by_agent_slug_or_id(client, auditor, trail):
    by_slug = _seqs(_get(client, auditor, agent="reader"))
    by_id = _seqs(_get(client, auditor, agent=str(trail.reader.pk)))
    expected = list(AuditRecord.objects.filter(agent_id=str(trail.reader.pk)).values_list("seq", flat=True))
    assert by_slug == by_id == expected
    assert len(expected) >= 4  # created, activated, granted, key issued, decided


def test_an_unknown_agent_is_an_error_and_shows_nothing(client, auditor, trail):
    response = _get(client, auditor, agent="nobody")
    assert _seqs(response) == []
    assert "No agent has the slug or id “nobody”" in response.content.decode()


def test_filter_by_tool(client, auditor, trail):
    response = _get(client, auditor, tool="crm.read")
    assert {row.record.tool for row in response.context["rows"]} == {"crm.read"}
    assert len(_seqs(response)) == AuditRecord.objects.filter(tool="crm.read").count()


def test_filter_by_action_prefix_and_exact_action(client, auditor, trail):
    prefixed = _get(client, auditor, action="tool_call.")
    assert len(_seqs(prefixed)) == 4
    assert {row.record.action for row in prefixed.context["rows"]} == {"tool_call.decided"}
    exact = _get(client, auditor, action="grant.changed")
    assert _seqs(exact) == [trail.old.seq]
    assert _seqs(_get(client, auditor, action="tool_call")) == []  # neither an action nor a prefix


def test_filter_by_actor_label_or_id(client, auditor, trail):
    assert _seqs(_get(client, auditor, actor="alice")) == [trail.old.seq]
    assert _seqs(_get(client, auditor, actor="42")) == [trail.old.seq]
    by_agent = _get(client, auditor, actor="payer")
    assert {row.record.actor_kind for row in by_agent.context["rows"]} == {"agent"}
    assert len(_seqs(by_agent)) == 3


def test_filter_by_time(client, auditor, trail):
    before = _get(client, auditor, until="2025-01-01T00:00")
    assert _seqs(before) == [trail.old.seq]
    window = _get(client, auditor, since="2024-06-01T09:00", until="2024-06-01T10:00:00")
    assert _seqs(window) == [trail.old.seq]
    after = _seqs(_get(client, auditor, since="2025-01-01T00:00"))
    assert trail.old.seq not in after
    assert len(after) == AuditRecord.objects.count() - 1


def test_an_inverted_time_window_is_an_error(client, auditor, trail):
    response = _get(client, auditor, since="2025-01-02T00:00", until="2025-01-01T00:00")
    assert _seqs(response) == []
    assert "Pick an end after the start." in response.content.decode()


def test_filter_by_seal_status(client, auditor, trail):
    assert _seqs(_get(client, auditor, sealed="false")) == [trail.pending.seq]
    sealed = _seqs(_get(client, auditor, sealed="true"))
    assert trail.pending.seq not in sealed
    assert len(sealed) == AuditRecord.objects.count() - 1


def test_filters_combine(client, auditor, trail):
    response = _get(client, auditor, agent="payer", action="tool_call.", sealed="true")
    assert len(_seqs(response)) == 2
    assert "matching the filters" in response.content.decode()


def test_one_record_by_its_sequence_number(client, auditor, trail):
    assert _seqs(_get(client, auditor, seq=str(trail.old.seq))) == [trail.old.seq]
    response = _get(client, auditor, seq="last")
    assert _seqs(response) == []
    assert "Record number (seq): Enter a whole number." in response.content.decode()


def test_fifty_records_a_page_newest_first(client, auditor, trail):
    with transaction.atomic():
        for number in range(PAGE_SIZE):
            audit.append(
                actor=Actor.system("test"), action="bulk.noted", subject_type="note", subject_id=str(number), payload={}
            )
    total = AuditRecord.objects.count()
    first = _get(client, auditor)
    assert len(_seqs(first)) == PAGE_SIZE
    assert _seqs(first) == sorted(_seqs(first), reverse=True)
    second = _get(client, auditor, page="2")
    assert len(_seqs(second)) == total - PAGE_SIZE
    assert max(_seqs(second)) < min(_seqs(first))
    assert "Page 2 of 2" in second.content.decode()
    # Filters carry over to the other pages; a page past the end shows the last one.
    assert 'href="?action=bulk.&amp;page=2"' not in _get(client, auditor, action="bulk.").content.decode()
    assert 'href="?tool=&amp;page=2"' in _get(client, auditor, tool="").content.decode()
    assert _seqs(_get(client, auditor, page="99")) == _seqs(second)


# Sensitive values ---------------------------------------------------------------------------


def test_masked_values_are_shown_as_the_marker_never_as_digests(client, auditor, trail):
    html = _get(client, auditor).content.decode()
    assert html.count(MARKER) >= 2  # alice's approval code, reader's national id (plus the legend)
    assert trail.masked["$sensitive"]["digest"] not in html
    assert trail.masked["$sensitive"]["salt"] not in html
    assert "$sensitive" not in html
    assert "756.1234.5678.97" not in html
    decided = AuditRecord.objects.get(action="tool_call.decided", agent_id=str(trail.reader.pk))
    stored = json.loads(decided.payload)["arguments"]["national_id"]["$sensitive"]
    assert stored["digest"] not in html
    assert stored["salt"] not in html


# The admin ----------------------------------------------------------------------------------


def test_the_admin_shows_records_read_only_with_payload_redacted(client, auditor, trail):
    client.force_login(auditor)
    listing = client.get("/admin/audit/auditrecord/")
    assert listing.status_code == 200
    listing_html = listing.content.decode()
    assert '<span class="wd-badge wd-seal-pending">pending</span>' in listing_html
    assert "block 0" in listing_html
    assert client.get("/admin/audit/auditrecord/?sealed=no").context["cl"].result_count == 1
    page = client.get(f"/admin/audit/auditrecord/{trail.old.seq}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert MARKER in html
    assert trail.masked["$sensitive"]["digest"] not in html
    assert trail.old.payload_digest in html
    assert f'href="/audit/?seq={trail.old.seq}#verify-{trail.old.seq}"' in html
    assert 'name="_save"' not in html
    assert client.get("/admin/audit/auditrecord/add/").status_code == 403
    assert client.get(f"/admin/audit/auditrecord/{trail.old.seq}/delete/").status_code == 403
    block = Block.objects.get(height=0)
    assert client.get("/admin/audit/block/").status_code == 200
    block_page = client.get(f"/admin/audit/block/{block.height}/change/").content.decode()
    assert block.block_hash in block_page
    in_block = client.get(f"/admin/audit/auditrecord/?block={block.height}")
    assert in_block.context["cl"].result_count == block.size
    assert client.get("/admin/audit/seal/").status_code == 404  # seals are not in the admin


def test_viewers_do_not_see_the_trail_in_the_admin(client, viewer, auditor):
    client.force_login(viewer)
    assert client.get("/admin/audit/auditrecord/").status_code == 403
    assert 'href="/audit/"' not in client.get("/admin/").content.decode()
    client.force_login(auditor)
    assert 'href="/audit/" class="wd-trail-link">Audit trail</a>' in client.get("/admin/").content.decode()
