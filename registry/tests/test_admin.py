"""The registry in the Django admin: lists, forms, object actions and keys, all through services."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from core.actors import Actor
from core.errors import AuthenticationFailed
from core.testing import assert_change_record, change_records
from registry import services
from registry.admin import TRANSITION_VERBS
from registry.choices import AGENT_TRANSITIONS, AgentStatus, ChangeAction, RiskTier
from registry.models import Agent, ChangeRecord, Credential, Grant, Role
from registry.tests.factories import AgentFactory, GrantFactory, RoleFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("known_tools")]

KEY_IN_PAGE = re.compile(r"wdn_[a-z0-9]{12}_[A-Za-z0-9]{40}")
SCOPE = {"data_domains": ["alerts"], "environments": ["production"], "max_delegation_depth": 0}


@pytest.fixture
def su_actor(superuser):
    return Actor.from_user(superuser)


def _management_data(response) -> dict[str, str]:
    """The management-form fields of every inline formset on a rendered admin form."""
    data = {}
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name, value in formset.management_form.initial.items():
            data[f"{formset.prefix}-{name}"] = str(value)
    return data


def _agent_form_data(response, **fields) -> dict[str, str]:
    form = response.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if callable(value):
            value = value()
        if hasattr(value, "pk"):
            value = value.pk
        if name == "scope":
            value = json.dumps(value if value is not None else SCOPE)
        data[name] = "" if value is None else str(value)
    data.update(_management_data(response))
    data.update({key: str(value) for key, value in fields.items()})
    return data


def _cache_control(response) -> set[str]:
    return {part.strip() for part in response["Cache-Control"].split(",")}


# Lists -------------------------------------------------------------------------------------


def test_agent_changelist_renders_with_filters_and_search(admin_client_su):
    role = RoleFactory(slug="analyst", name="Analyst")
    AgentFactory(name="Alert triage", role=role, status=AgentStatus.ACTIVE, risk_tier=RiskTier.HIGH)
    AgentFactory(name="Payments bot", description="moves money")
    url = reverse("admin:registry_agent_changelist")

    response = admin_client_su.get(url)
    assert response.status_code == 200
    content = response.content.decode()
    assert "Alert triage" in content
    assert "Payments bot" in content
    assert "wd-status-active" in content
    assert {spec.title for spec in response.context["cl"].filter_specs} >= {"status", "risk tier", "role"}

    filtered = admin_client_su.get(url, {"status__exact": "active"})
    assert [agent.name for agent in filtered.context["cl"].result_list] == ["Alert triage"]
    by_role = admin_client_su.get(url, {"role__id__exact": str(role.pk)})
    assert [agent.name for agent in by_role.context["cl"].result_list] == ["Alert triage"]
    searched = admin_client_su.get(url, {"q": "money"})
    assert [agent.name for agent in searched.context["cl"].result_list] == ["Payments bot"]


@pytest.mark.parametrize("model", ["role", "grant", "credential", "changerecord"])
def test_other_changelists_render(admin_client_su, actor, model):
    role = RoleFactory()
    agent = AgentFactory(role=role)
    GrantFactory(agent=agent)
    GrantFactory.for_role(role)
    services.credential_issue(actor=actor, agent=agent)
    response = admin_client_su.get(reverse(f"admin:registry_{model}_changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


# Add and change forms ----------------------------------------------------------------------


def test_add_form_creates_an_agent_with_a_role_and_an_inline_grant(admin_client_su, superuser, su_actor, owner):
    role = RoleFactory(slug="analyst")
    url = reverse("admin:registry_agent_add")
    page = admin_client_su.get(url)
    assert page.status_code == 200
    data = _agent_form_data(
        page,
        name="Alert triage",
        slug="alert-triage",
        owner=owner.pk,
        role=role.pk,
        model_name="phi-4",
        risk_tier="high",
        scope=json.dumps(SCOPE),
    )
    data.update(
        {
            "grants-TOTAL_FORMS": "1",
            "grants-0-tool": "crm.read",
            "grants-0-constraints": json.dumps({"limit": {"maximum": 10}}),
            "grants-0-rate_limit_per_minute": "30",
            "grants-0-valid_until_0": "",
            "grants-0-valid_until_1": "",
            "grants-0-reason": "Reads customer files.",
        }
    )

    response = admin_client_su.post(url, data)

    assert response.status_code == 302, _form_errors(response)
    agent = Agent.objects.get(slug="alert-triage")
    assert (agent.role, agent.owner, agent.risk_tier, agent.scope) == (role, owner, "high", SCOPE)
    grant = Grant.objects.get(agent=agent)
    assert (grant.tool_id, grant.constraints, grant.rate_limit_per_minute, grant.granted_by) == (
        "crm.read",
        {"limit": {"maximum": 10}},
        30,
        superuser,
    )
    assert_change_record(agent, ChangeAction.AGENT_CREATED, actor=su_actor)
    assert_change_record(grant, ChangeAction.GRANT_ADDED, actor=su_actor)
    assert not ChangeRecord.objects.filter(action=ChangeAction.UNATTRIBUTED_SAVE).exists()


def _form_errors(response) -> str:
    if response.context is None:
        return f"status {response.status_code}"
    errors = [response.context["adminform"].form.errors]
    errors += [inline.formset.errors for inline in response.context["inline_admin_formsets"]]
    errors += [inline.formset.non_form_errors() for inline in response.context["inline_admin_formsets"]]
    return repr(errors)


def test_add_form_shows_scope_errors_and_saves_nothing(admin_client_su, owner):
    url = reverse("admin:registry_agent_add")
    data = _agent_form_data(
        admin_client_su.get(url),
        name="Bad",
        slug="bad",
        owner=owner.pk,
        model_name="m",
        scope=json.dumps({"data_domains": []}),
    )
    response = admin_client_su.post(url, data)
    assert response.status_code == 200
    assert "scope" in response.context["adminform"].form.errors
    assert not Agent.objects.exists()
    assert not ChangeRecord.objects.exclude(action__startswith="tool.").exists()


def test_change_form_updates_through_the_service(admin_client_su, su_actor):
    agent = AgentFactory(name="Old name", status=AgentStatus.ACTIVE)
    grant = GrantFactory(agent=agent, tool="crm.read", rate_limit_per_minute=5)
    url = reverse("admin:registry_agent_change", args=[agent.pk])
    page = admin_client_su.get(url)
    data = _agent_form_data(page, name="New name")
    data.update(
        {
            "grants-0-id": str(grant.pk),
            "grants-0-agent": str(agent.pk),
            "grants-0-tool": "crm.read",
            "grants-0-constraints": "{}",
            "grants-0-rate_limit_per_minute": "9",
            "grants-0-valid_until_0": "",
            "grants-0-valid_until_1": "",
            "grants-0-reason": grant.reason,
        }
    )

    response = admin_client_su.post(url, data)

    assert response.status_code == 302, _form_errors(response)
    assert Agent.objects.get(pk=agent.pk).name == "New name"
    assert Grant.objects.get(pk=grant.pk).rate_limit_per_minute == 9
    record = assert_change_record(agent, ChangeAction.AGENT_UPDATED, actor=su_actor)
    assert record.changed_fields == ["name"]
    assert_change_record(grant, ChangeAction.GRANT_CHANGED, actor=su_actor)
    assert not ChangeRecord.objects.filter(action=ChangeAction.UNATTRIBUTED_SAVE).exists()


def test_change_form_can_remove_an_inline_grant(admin_client_su, su_actor):
    agent = AgentFactory()
    grant = GrantFactory(agent=agent)
    url = reverse("admin:registry_agent_change", args=[agent.pk])
    data = _agent_form_data(admin_client_su.get(url))
    data.update(
        {
            "grants-0-id": str(grant.pk),
            "grants-0-agent": str(agent.pk),
            "grants-0-tool": grant.tool,
            "grants-0-constraints": "{}",
            "grants-0-reason": grant.reason,
            "grants-0-DELETE": "on",
        }
    )
    response = admin_client_su.post(url, data)
    assert response.status_code == 302, _form_errors(response)
    assert not Grant.objects.filter(pk=grant.pk).exists()
    assert_change_record(grant, ChangeAction.GRANT_REMOVED, actor=su_actor)


def test_change_page_shows_actions_role_grants_and_history(admin_client_su, actor):
    role = RoleFactory(name="Analyst")
    agent = AgentFactory(role=role, status=AgentStatus.ACTIVE)
    GrantFactory.for_role(role, tool="aml.alerts.read")
    services.agent_update(actor=actor, agent=agent, description="Now documented.")
    services.credential_issue(actor=actor, agent=agent, name="prod")

    response = admin_client_su.get(reverse("admin:registry_agent_change", args=[agent.pk]))

    assert response.status_code == 200
    content = response.content.decode()
    assert 'id="history"' in content
    for action in ("agent.created", "agent.status_changed", "agent.updated", "credential.issued"):
        assert action in content
    assert "Now documented." in content
    assert "aml.alerts.read" in content
    assert [status for status, _ in response.context["transitions"]] == ["quarantined", "retired", "suspended"]
    assert reverse("admin:registry_agent_transition", args=[agent.pk, "suspended"]) in content
    assert reverse("admin:registry_agent_issue_key", args=[agent.pk]) in content
    credential = Credential.objects.get(agent=agent)
    assert f"wdn_{credential.prefix}_" in content
    assert reverse("admin:registry_credential_rotate", args=[credential.pk]) in content
    assert not KEY_IN_PAGE.search(content)


def test_retired_agent_change_page_is_read_only(admin_client_su):
    agent = AgentFactory(name="Gone", status=AgentStatus.RETIRED)
    url = reverse("admin:registry_agent_change", args=[agent.pk])
    response = admin_client_su.get(url)
    assert response.status_code == 200
    assert response.context["has_change_permission"] is False
    assert response.context["transitions"] == []
    assert response.context["can_issue_key"] is False
    assert 'name="_save"' not in response.content.decode()
    refused = admin_client_su.post(url, {"name": "Back"})
    assert refused.status_code == 403
    assert Agent.objects.get(pk=agent.pk).name == "Gone"


def test_viewer_can_view_but_not_change(client, viewer):
    agent = AgentFactory(name="Watched", status=AgentStatus.ACTIVE)
    client.force_login(viewer)
    assert client.get(reverse("admin:registry_agent_changelist")).status_code == 200
    page = client.get(reverse("admin:registry_agent_change", args=[agent.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert page.context["transitions"] == []
    assert page.context["can_issue_key"] is False
    assert client.post(reverse("admin:registry_agent_change", args=[agent.pk]), {"name": "X"}).status_code == 403
    assert client.get(reverse("admin:registry_agent_add")).status_code == 403
    transition = reverse("admin:registry_agent_transition", args=[agent.pk, "suspended"])
    assert client.post(transition, {"reason": "x"}).status_code == 403
    assert client.post(reverse("admin:registry_agent_issue_key", args=[agent.pk]), {}).status_code == 403
    stored = Agent.objects.get(pk=agent.pk)
    assert (stored.name, stored.status) == ("Watched", AgentStatus.ACTIVE)
    assert not Credential.objects.exists()


def test_groupless_staff_sees_no_registry(client, groupless_user):
    client.force_login(groupless_user)
    assert client.get(reverse("admin:registry_agent_changelist")).status_code == 403


# Object actions ----------------------------------------------------------------------------


def test_transition_page_confirms_then_moves(admin_client_su, su_actor):
    agent = AgentFactory()
    url = reverse("admin:registry_agent_transition", args=[agent.pk, "active"])

    confirm = admin_client_su.get(url)
    assert confirm.status_code == 200
    assert confirm.context["confirm_label"] == "Activate"
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.DRAFT

    response = admin_client_su.post(url, {"reason": "Reviewed."})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:registry_agent_change", args=[agent.pk])
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE
    record = assert_change_record(agent, ChangeAction.AGENT_STATUS_CHANGED, actor=su_actor)
    assert record.reason == "Reviewed."


LEGAL_MOVES = [(source, target) for source, targets in AGENT_TRANSITIONS.items() for target in sorted(targets)]


@pytest.mark.parametrize(("source", "target"), LEGAL_MOVES, ids=[f"{s}->{t}" for s, t in LEGAL_MOVES])
def test_every_status_action_page_works(admin_client_su, su_actor, source, target):
    agent = AgentFactory(status=source)
    change_page = admin_client_su.get(reverse("admin:registry_agent_change", args=[agent.pk]))
    url = reverse("admin:registry_agent_transition", args=[agent.pk, target])
    assert url in change_page.content.decode()

    confirm = admin_client_su.get(url)
    assert confirm.status_code == 200
    assert confirm.context["confirm_label"] == TRANSITION_VERBS[target]
    assert confirm.context["needs_reason"] is (AgentStatus.QUARANTINED in (source, target))
    assert Agent.objects.get(pk=agent.pk).status == source

    response = admin_client_su.post(url, {"reason": "Reviewed by the on-call human."})
    assert response.status_code == 302
    assert Agent.objects.get(pk=agent.pk).status == target
    record = change_records(agent, ChangeAction.AGENT_STATUS_CHANGED).last()
    assert (record.actor_id, record.after["status"]) == (su_actor.id, target)


def test_quarantine_without_reason_shows_an_error_and_changes_nothing(admin_client_su):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    url = reverse("admin:registry_agent_transition", args=[agent.pk, "quarantined"])
    assert admin_client_su.get(url).context["needs_reason"] is True
    records = ChangeRecord.objects.count()

    response = admin_client_su.post(url, {"reason": "  "})

    assert response.status_code == 200
    assert response.context["error"]
    assert "errornote" in response.content.decode()
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.ACTIVE
    assert ChangeRecord.objects.count() == records

    done = admin_client_su.post(url, {"reason": "Guardian flagged exfiltration."})
    assert done.status_code == 302
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.QUARANTINED


def test_illegal_transition_page_shows_an_error(admin_client_su):
    agent = AgentFactory()
    response = admin_client_su.post(reverse("admin:registry_agent_transition", args=[agent.pk, "suspended"]), {})
    assert response.status_code == 200
    assert "cannot go from draft to suspended" in response.context["error"]
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.DRAFT


def test_unknown_status_page_is_404(admin_client_su):
    agent = AgentFactory()
    assert admin_client_su.get(reverse("admin:registry_agent_transition", args=[agent.pk, "paused"])).status_code == 404


def test_issue_key_page_shows_the_key_once(admin_client_su, su_actor):
    agent = AgentFactory(status=AgentStatus.ACTIVE)
    url = reverse("admin:registry_agent_issue_key", args=[agent.pk])
    form = admin_client_su.get(url)
    assert form.status_code == 200
    assert not KEY_IN_PAGE.search(form.content.decode())

    response = admin_client_su.post(url, {"name": "production", "expires_at": ""})

    assert response.status_code == 200
    assert "no-store" in _cache_control(response)
    keys_shown = KEY_IN_PAGE.findall(response.content.decode())
    assert keys_shown
    key = keys_shown[0]
    assert set(keys_shown) == {key}
    credential = services.credential_authenticate(key)
    assert (credential.agent, credential.name, credential.created_by_id) == (agent, "production", int(su_actor.id))
    assert_change_record(credential, ChangeAction.CREDENTIAL_ISSUED, actor=su_actor)
    # The agent page afterwards shows only the masked key.
    page = admin_client_su.get(reverse("admin:registry_agent_change", args=[agent.pk]))
    assert key not in page.content.decode()
    assert f"wdn_{credential.prefix}_" in page.content.decode()


def test_issue_key_refuses_a_past_expiry(admin_client_su):
    agent = AgentFactory()
    response = admin_client_su.post(
        reverse("admin:registry_agent_issue_key", args=[agent.pk]), {"name": "x", "expires_at": "2001-01-01 00:00"}
    )
    assert response.status_code == 200
    assert "expires_at" in response.context["form"].errors
    assert not KEY_IN_PAGE.search(response.content.decode())
    assert not Credential.objects.exists()


def test_issue_key_for_a_retired_agent_shows_the_error(admin_client_su):
    agent = AgentFactory(status=AgentStatus.RETIRED)
    response = admin_client_su.post(reverse("admin:registry_agent_issue_key", args=[agent.pk]), {"name": "x"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert not Credential.objects.exists()


def test_rotate_page(admin_client_su, actor, su_actor):
    old = services.credential_issue(actor=actor, agent=AgentFactory(), name="prod")
    url = reverse("admin:registry_credential_rotate", args=[old.credential.pk])
    confirm = admin_client_su.get(url)
    assert confirm.status_code == 200
    assert Credential.objects.get(pk=old.credential.pk).state() == "active"

    response = admin_client_su.post(url, {})

    assert response.status_code == 200
    assert "no-store" in _cache_control(response)
    new_key = KEY_IN_PAGE.search(response.content.decode()).group(0)
    assert new_key != old.key
    assert services.credential_authenticate(new_key).replaces_id == old.credential.pk
    with pytest.raises(AuthenticationFailed):
        services.credential_authenticate(old.key)
    assert_change_record(old.credential, ChangeAction.CREDENTIAL_ROTATED, actor=su_actor)

    again = admin_client_su.post(url, {})
    assert again.status_code == 200
    assert again.context["error"]
    assert not KEY_IN_PAGE.search(again.content.decode())


def test_revoke_page(admin_client_su, actor, su_actor):
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    url = reverse("admin:registry_credential_revoke", args=[issued.credential.pk])
    assert admin_client_su.get(url).status_code == 200
    assert Credential.objects.get(pk=issued.credential.pk).state() == "active"

    response = admin_client_su.post(url, {"reason": "Laptop lost."})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:registry_agent_change", args=[issued.credential.agent_id])
    assert Credential.objects.get(pk=issued.credential.pk).revoked_reason == "Laptop lost."
    with pytest.raises(AuthenticationFailed):
        services.credential_authenticate(issued.key)
    assert_change_record(issued.credential, ChangeAction.CREDENTIAL_REVOKED, actor=su_actor)


def test_key_pages_need_key_permissions(client, viewer, actor):
    issued = services.credential_issue(actor=actor, agent=AgentFactory())
    client.force_login(viewer)
    for name in ("admin:registry_credential_rotate", "admin:registry_credential_revoke"):
        assert client.post(reverse(name, args=[issued.credential.pk]), {}).status_code == 403
    assert Credential.objects.get(pk=issued.credential.pk).state() == "active"
    assert Credential.objects.count() == 1


# Bulk actions ------------------------------------------------------------------------------


def _bulk(client, action, agents):
    return client.post(
        reverse("admin:registry_agent_changelist"),
        {"action": action, "_selected_action": [str(agent.pk) for agent in agents]},
        follow=True,
    )


def test_bulk_activate_and_suspend(admin_client_su, su_actor):
    drafts = [AgentFactory(), AgentFactory()]
    response = _bulk(admin_client_su, "activate_selected", drafts)
    assert response.status_code == 200
    assert set(Agent.objects.values_list("status", flat=True)) == {AgentStatus.ACTIVE}
    for agent in drafts:
        assert_change_record(agent, ChangeAction.AGENT_STATUS_CHANGED, actor=su_actor)

    _bulk(admin_client_su, "suspend_selected", drafts)
    assert set(Agent.objects.values_list("status", flat=True)) == {AgentStatus.SUSPENDED}


def test_bulk_action_reports_refused_agents(admin_client_su):
    active = AgentFactory(slug="is-active", status=AgentStatus.ACTIVE)
    quarantined = AgentFactory(slug="is-quarantined", status=AgentStatus.QUARANTINED)
    response = _bulk(admin_client_su, "suspend_selected", [active, quarantined])
    messages = [str(message) for message in response.context["messages"]]
    assert any("is-active" in message and message.startswith("Suspended") for message in messages)
    assert any("is-quarantined" in message and message.startswith("Not changed") for message in messages)
    assert Agent.objects.get(pk=active.pk).status == AgentStatus.SUSPENDED
    assert Agent.objects.get(pk=quarantined.pk).status == AgentStatus.QUARANTINED


def test_bulk_retire_revokes_keys(admin_client_su, actor):
    agents = [AgentFactory(status=AgentStatus.ACTIVE), AgentFactory()]
    issued = [services.credential_issue(actor=actor, agent=agent) for agent in agents]
    _bulk(admin_client_su, "retire_selected", agents)
    assert set(Agent.objects.values_list("status", flat=True)) == {AgentStatus.RETIRED}
    for item in issued:
        assert Credential.objects.get(pk=item.credential.pk).state() == "revoked"
        assert_change_record(item.credential, ChangeAction.CREDENTIAL_REVOKED)


def test_viewer_gets_no_bulk_actions(client, viewer):
    agent = AgentFactory()
    client.force_login(viewer)
    page = client.get(reverse("admin:registry_agent_changelist"))
    assert page.status_code == 200
    assert "activate_selected" not in page.content.decode()
    _bulk(client, "activate_selected", [agent])
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.DRAFT


def test_agents_cannot_be_deleted_in_the_admin(admin_client_su):
    agent = AgentFactory()
    assert admin_client_su.get(reverse("admin:registry_agent_delete", args=[agent.pk])).status_code == 403
    assert Agent.objects.filter(pk=agent.pk).exists()


# Roles and grants --------------------------------------------------------------------------


def test_role_add_and_delete_in_the_admin(admin_client_su, su_actor):
    url = reverse("admin:registry_role_add")
    page = admin_client_su.get(url)
    data = {"slug": "analyst", "name": "Analyst", "description": "", **_management_data(page)}
    response = admin_client_su.post(url, data)
    assert response.status_code == 302, _form_errors(response)
    role = Role.objects.get(slug="analyst")
    assert_change_record(role, ChangeAction.ROLE_CREATED, actor=su_actor)

    page = admin_client_su.get(reverse("admin:registry_role_change", args=[role.pk]))
    assert 'id="history"' in page.content.decode()
    assert "role.created" in page.content.decode()

    response = admin_client_su.post(reverse("admin:registry_role_delete", args=[role.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Role.objects.filter(pk=role.pk).exists()
    assert_change_record(role, ChangeAction.ROLE_DELETED, actor=su_actor)


def test_grant_admin_add_records(admin_client_su, su_actor):
    agent = AgentFactory()
    url = reverse("admin:registry_grant_add")
    response = admin_client_su.post(
        url,
        {
            "agent": str(agent.pk),
            "role": "",
            "tool": "crm.read",
            "constraints": "{}",
            "rate_limit_per_minute": "",
            "valid_from_0": "",
            "valid_from_1": "",
            "valid_until_0": "",
            "valid_until_1": "",
            "reason": "Reads the CRM.",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    grant = Grant.objects.get(agent=agent)
    assert_change_record(grant, ChangeAction.GRANT_ADDED, actor=su_actor)
    assert change_records(grant).count() == 1


def test_change_records_are_read_only_in_the_admin(admin_client_su):
    agent = AgentFactory()
    record = change_records(agent).first()
    page = admin_client_su.get(reverse("admin:registry_changerecord_change", args=[record.pk]))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert admin_client_su.get(reverse("admin:registry_changerecord_add")).status_code == 403


def test_credential_admin_has_no_add(admin_client_su):
    assert admin_client_su.get(reverse("admin:registry_credential_add")).status_code == 403


def test_owner_filter_lists_users(admin_client_su):
    UserFactory(username="sponsor-a")
    AgentFactory(owner=UserFactory(username="sponsor-b"))
    assert admin_client_su.get(reverse("admin:registry_agent_changelist")).status_code == 200
