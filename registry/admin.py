"""The Agent Registry in the Django admin: the first screen Warden's users see.

Every save, action and inline edit goes through `registry.services`, so admin changes are
validated and recorded exactly like API changes. Status changes and keys have their own
confirmation pages; a new key is rendered once in the response and never stored.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from core.actors import Actor
from core.errors import WardenError
from registry import selectors, services
from registry.choices import AgentStatus, RiskTier
from registry.models import Agent, ChangeRecord, Credential, Grant, Role, Tool

# Verb shown on the button that moves an agent to each status.
TRANSITION_VERBS = {
    AgentStatus.ACTIVE: "Activate",
    AgentStatus.SUSPENDED: "Suspend",
    AgentStatus.QUARANTINED: "Quarantine",
    AgentStatus.RETIRED: "Retire",
}


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_user(request.user)


def status_badge(status: str) -> str:
    """A coloured pill for an agent status."""
    return format_html('<span class="wd-badge wd-status-{}">{}</span>', status, AgentStatus(status).label)


def risk_badge(tier: str) -> str:
    """A coloured pill for a risk tier."""
    return format_html('<span class="wd-badge wd-risk-{}">{}</span>', tier, RiskTier(tier).label)


@admin.display(description="Key")
def masked_key(credential: Credential) -> str:
    """A key as it may be shown after issue: its prefix and nothing of the secret."""
    return format_html("<code>wdn_{}_••••••••</code>", credential.prefix)


@admin.display(description="State")
def key_state_badge(credential: Credential) -> str:
    """A coloured pill for a key's state (active, expired, revoked)."""
    state = credential.state()
    return format_html('<span class="wd-badge wd-key-{}">{}</span>', state, state)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def history_rows(records: QuerySet[ChangeRecord]) -> list[dict[str, Any]]:
    """Change records prepared for display: each with its per-field before → after pairs."""
    rows = []
    for record in records:
        before, after = record.before or {}, record.after or {}
        fields = record.changed_fields or sorted(set(before) | set(after))
        rows.append(
            {
                "record": record,
                "changes": [
                    (field, before.get(field), after.get(field))
                    for field in fields
                    if field not in {"id", "created_at", "updated_at"}
                ],
            }
        )
    return rows


class PrettyJSONWidget(forms.Textarea):
    """A textarea that shows JSON indented, so scopes and constraints read well."""

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return _json(value)


# Inlines -----------------------------------------------------------------------------------


class GrantInline(admin.TabularInline):
    """The agent's own grants, editable in place."""

    model = Grant
    fk_name = "agent"
    extra = 0
    # The validity start is edited on the grant's own page; the inline keeps the row readable.
    fields = ["tool", "constraints", "rate_limit_per_minute", "valid_until", "reason", "granted_by"]
    readonly_fields = ["granted_by"]
    classes = ["wd-inline-grants"]
    formfield_overrides = {
        Grant._meta.get_field("constraints").__class__: {"widget": PrettyJSONWidget(attrs={"rows": 3, "cols": 36})},
    }
    verbose_name = "grant"
    verbose_name_plural = "Grants (this agent's own; role grants are listed above)"

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        formset.form.base_fields["reason"].widget = forms.Textarea(attrs={"rows": 2, "cols": 30})
        return formset


class RoleGrantInline(GrantInline):
    """The grants a role gives to each of its agents."""

    fk_name = "role"
    verbose_name_plural = "Grants (given to every agent with this role)"


class CredentialInline(admin.TabularInline):
    """The agent's keys, read-only; issue, rotate and revoke with the buttons."""

    model = Credential
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "masked_key",
        "name",
        "state_badge",
        "created_at",
        "expires_at",
        "last_used_at",
        "key_actions",
    )
    verbose_name_plural = "API keys"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    masked_key = staticmethod(masked_key)
    state_badge = staticmethod(key_state_badge)

    @admin.display(description="")
    def key_actions(self, credential: Credential) -> str:
        if credential.state() != "active":
            return ""
        return format_html(
            '<a class="button" href="{}">Rotate</a> <a class="button wd-danger" href="{}">Revoke</a>',
            reverse("admin:registry_credential_rotate", args=[credential.pk]),
            reverse("admin:registry_credential_revoke", args=[credential.pk]),
        )


# Agents ------------------------------------------------------------------------------------


class AgentAdminForm(forms.ModelForm):
    """The agent form, with readable JSON for the scope."""

    endpoint_url = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text=Agent._meta.get_field("endpoint_url").help_text,
    )

    class Meta:
        model = Agent
        fields = sorted(services.AGENT_EDITABLE)
        widgets = {"scope": PrettyJSONWidget(attrs={"rows": 10, "cols": 60})}


def _run_bulk_transition(modeladmin: AgentAdmin, request: HttpRequest, queryset: QuerySet[Agent], to: str) -> None:
    moved, refused = [], []
    for agent in queryset:
        try:
            # No reason is given in bulk, so quarantined agents are refused: release them one by one.
            services.agent_transition(actor=_actor(request), agent=agent, to=to)
            moved.append(agent.slug)
        except WardenError as error:
            refused.append(f"{agent.slug} ({error.message})")
    if moved:
        modeladmin.message_user(request, f"{AgentStatus(to).label}: {', '.join(moved)}.", messages.SUCCESS)
    if refused:
        modeladmin.message_user(request, f"Not changed: {'; '.join(refused)}", messages.WARNING)


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    """Register agents, give them authority and keys, and move them through their lifecycle."""

    form = AgentAdminForm
    change_form_template = "admin/registry/agent/change_form.html"
    list_display = ["agent_name", "status_pill", "risk_pill", "role", "owner", "model_display", "grants", "last_seen"]
    list_filter = ["status", "risk_tier", "role", "owner", "model_kind"]
    search_fields = ["name", "slug", "description", "team", "owner__username"]
    list_per_page = 50
    prepopulated_fields = {"slug": ("name",)}
    autocomplete_fields = ["supervisor"]
    readonly_fields = ["status_pill", "status_changed_at", "last_seen_at", "created_at", "updated_at", "id"]
    inlines = [GrantInline, CredentialInline]
    actions = ["activate_selected", "suspend_selected", "retire_selected"]
    fieldsets = [
        ("Identity", {"fields": ["name", "slug", "description", "version", "endpoint_url"]}),
        ("Accountability", {"fields": ["owner", "team", "supervisor"]}),
        ("Authority", {"fields": ["role", "risk_tier", "scope"]}),
        ("Limits", {"fields": ["max_calls_per_hour", "max_cost_per_day"]}),
        ("Model", {"fields": ["model_name", "model_kind", "model_version"]}),
        (
            "Lifecycle",
            {"fields": ["status_pill", "status_changed_at", "last_seen_at", "created_at", "updated_at", "id"]},
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agent]:
        return selectors.agent_list()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # Agents are retired, never deleted: their history must stay.

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.status == AgentStatus.RETIRED:
            return False
        return super().has_change_permission(request, obj)

    # List columns.
    @admin.display(description="Agent", ordering="name")
    def agent_name(self, agent: Agent) -> str:
        return format_html("<strong>{}</strong><br><code class='wd-slug'>{}</code>", agent.name, agent.slug)

    @admin.display(description="Status", ordering="status")
    def status_pill(self, agent: Agent) -> str:
        return status_badge(agent.status)

    @admin.display(description="Risk", ordering="risk_tier")
    def risk_pill(self, agent: Agent) -> str:
        return risk_badge(agent.risk_tier)

    @admin.display(description="Model", ordering="model_name")
    def model_display(self, agent: Agent) -> str:
        return format_html(
            "{}<span class='wd-kind' title='{}'>{}</span>",
            agent.model_name,
            agent.get_model_kind_display(),
            agent.model_kind.upper(),
        )

    @admin.display(description="Grants", ordering="grant_count")
    def grants(self, agent: Agent) -> int:
        return getattr(agent, "grant_count", 0)

    @admin.display(description="Last seen", ordering="last_seen_at")
    def last_seen(self, agent: Agent) -> str:
        return f"{timesince(agent.last_seen_at)} ago" if agent.last_seen_at else "never"

    # Bulk actions.
    @admin.action(description="Activate selected agents", permissions=["change"])
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        _run_bulk_transition(self, request, queryset, AgentStatus.ACTIVE)

    @admin.action(description="Suspend selected agents", permissions=["change"])
    def suspend_selected(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        _run_bulk_transition(self, request, queryset, AgentStatus.SUSPENDED)

    @admin.action(description="Retire selected agents (final; revokes their keys)", permissions=["change"])
    def retire_selected(self, request: HttpRequest, queryset: QuerySet[Agent]) -> None:
        _run_bulk_transition(self, request, queryset, AgentStatus.RETIRED)

    # Saving through services.
    def save_model(self, request: HttpRequest, obj: Agent, form: forms.ModelForm, change: bool) -> None:
        if change:
            changes = {name: form.cleaned_data[name] for name in form.changed_data if name in services.AGENT_EDITABLE}
            saved = services.agent_update(actor=_actor(request), agent=obj, **changes)
        else:
            fields = {name: form.cleaned_data[name] for name in form.fields if name in services.AGENT_EDITABLE}
            saved = services.agent_create(actor=_actor(request), **fields)
        obj.__dict__.update(saved.__dict__)  # the admin goes on with the object the service saved

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        save_grant_formset(request, formset)

    # Pages of the agent: history, status moves, keys.
    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        agent = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if agent is not None:
            can_change = super().has_change_permission(request, agent)
            context.update(
                history=history_rows(selectors.agent_history(agent)[:100]),
                role_grants=[
                    (item.grant, json.dumps(item.grant.constraints, sort_keys=True))
                    for item in selectors.agent_authority(agent, include_expired=True)
                    if item.source == "role"
                ],
                transitions=[
                    (status, TRANSITION_VERBS[AgentStatus(status)]) for status in services.allowed_transitions(agent)
                ]
                if can_change
                else [],
                can_issue_key=request.user.has_perm("registry.add_credential") and agent.status != AgentStatus.RETIRED,
                status_html=status_badge(agent.status),
                risk_html=risk_badge(agent.risk_tier),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:agent_id>/status/<str:to>/", wrap(self.transition_view), name="registry_agent_transition"),
            path("<uuid:agent_id>/issue-key/", wrap(self.issue_key_view), name="registry_agent_issue_key"),
            *super().get_urls(),
        ]

    def transition_view(self, request: HttpRequest, agent_id: Any, to: str) -> HttpResponse:
        """Confirm a status change (with a reason), then make it."""
        agent = get_object_or_404(Agent, pk=agent_id)
        if not super().has_change_permission(request, agent):
            raise PermissionDenied
        if to not in AgentStatus.values:
            raise Http404(f"Unknown status {to!r}.")
        change_url = reverse("admin:registry_agent_change", args=[agent.pk])
        error = None
        if request.method == "POST":
            try:
                services.agent_transition(
                    actor=_actor(request), agent=agent, to=to, reason=request.POST.get("reason", "")
                )
            except WardenError as exc:
                error = exc.message
            else:
                self.message_user(request, f"{agent.name} is now {AgentStatus(to).label.lower()}.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
        needs_reason = to == AgentStatus.QUARANTINED or agent.status == AgentStatus.QUARANTINED
        return TemplateResponse(
            request,
            "admin/registry/confirm_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": f"{TRANSITION_VERBS.get(AgentStatus(to), to)} {agent.name}?",
                "subject": agent,
                "message": _transition_message(agent, to),
                "needs_reason": needs_reason,
                "reason_label": "Reason (required)" if needs_reason else "Reason (optional)",
                "confirm_label": TRANSITION_VERBS.get(AgentStatus(to), "Confirm"),
                "danger": to in (AgentStatus.RETIRED, AgentStatus.QUARANTINED),
                "error": error,
                "cancel_url": change_url,
            },
        )

    def issue_key_view(self, request: HttpRequest, agent_id: Any) -> HttpResponse:
        """Ask for a label and expiry, issue the key, and show it this once."""
        agent = get_object_or_404(Agent, pk=agent_id)
        if not request.user.has_perm("registry.add_credential"):
            raise PermissionDenied
        form = IssueKeyForm(request.POST or None)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "agent": agent, "form": form}
        if request.method == "POST" and form.is_valid():
            try:
                issued = services.credential_issue(
                    actor=_actor(request),
                    agent=agent,
                    name=form.cleaned_data["name"],
                    expires_at=form.cleaned_data["expires_at"],
                )
            except WardenError as exc:
                form.add_error(None, exc.message)
            else:
                return key_shown_once(request, self.admin_site, agent, issued, title=f"New key for {agent.name}")
        return TemplateResponse(
            request, "admin/registry/issue_key.html", {**context, "title": f"Issue a key for {agent.name}"}
        )


def _transition_message(agent: Agent, to: str) -> str:
    effects = {
        AgentStatus.ACTIVE: "The agent will be able to request tool calls within its grants.",
        AgentStatus.SUSPENDED: "Every tool call the agent requests will be denied until it is activated again.",
        AgentStatus.QUARANTINED: "The agent's authority is frozen until a human releases it with a reason.",
        AgentStatus.RETIRED: "This is final: the agent can never act again and all its keys are revoked.",
    }
    return f"{agent.name} is {agent.get_status_display().lower()}. {effects.get(AgentStatus(to), '')}"


def save_grant_formset(request: HttpRequest, formset: Any) -> None:
    """Save inline grant rows through the grant services, one change record each."""
    actor = _actor(request)
    instances = formset.save(commit=False)
    for grant in formset.deleted_objects:
        services.grant_delete(actor=actor, grant=grant, reason="Removed in the admin.")
    editable = services.GRANT_EDITABLE
    for grant in instances:
        fields = {name: getattr(grant, name) for name in editable}
        if grant._state.adding:
            reason = fields.pop("reason")
            saved = services.grant_create(actor=actor, reason=reason, **fields)
        else:
            saved = services.grant_update(actor=actor, grant=grant, **fields)
        grant.__dict__.update(saved.__dict__)
    formset.save_m2m()


class IssueKeyForm(forms.Form):
    """What the issuer chooses for a new key."""

    name = forms.CharField(max_length=120, required=False, help_text="A label, e.g. 'production' or 'ci'.")
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Leave empty for the default lifetime. Format: 2027-01-31 18:00.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )

    def clean_expires_at(self) -> dt.datetime | None:
        value = self.cleaned_data["expires_at"]
        if value is not None and value <= timezone.now():
            raise ValidationError("Choose a time in the future.")
        return value


def key_shown_once(
    request: HttpRequest, site: admin.AdminSite, agent: Agent, issued: services.IssuedCredential, *, title: str
) -> HttpResponse:
    """Render a newly issued key. The page is not cached and the key is not kept anywhere."""
    response = TemplateResponse(
        request,
        "admin/registry/key_issued.html",
        {
            **site.each_context(request),
            "opts": Agent._meta,
            "title": title,
            "agent": agent,
            "credential": issued.credential,
            "key": issued.key,
            "agent_url": reverse("admin:registry_agent_change", args=[agent.pk]),
        },
    )
    response["Cache-Control"] = "no-store"
    return response


# Roles, grants, credentials, history ---------------------------------------------------------


@admin.register(Role)
class RoleAdmin(admin.ModelAdmin):
    """Roles and the grants they give."""

    list_display = ["name", "slug", "agent_count", "grant_count"]
    search_fields = ["name", "slug", "description"]
    prepopulated_fields = {"slug": ("name",)}
    inlines = [RoleGrantInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Role]:
        return selectors.role_list()

    @admin.display(description="Agents", ordering="agent_count")
    def agent_count(self, role: Role) -> int:
        return getattr(role, "agent_count", 0)

    @admin.display(description="Grants", ordering="grant_count")
    def grant_count(self, role: Role) -> int:
        return getattr(role, "grant_count", 0)

    def save_model(self, request: HttpRequest, obj: Role, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in services.ROLE_EDITABLE if name in form.cleaned_data}
        if change:
            saved = services.role_update(
                actor=_actor(request), role=obj, **{k: v for k, v in data.items() if k in form.changed_data}
            )
        else:
            saved = services.role_create(actor=_actor(request), **data)
        obj.__dict__.update(saved.__dict__)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        save_grant_formset(request, formset)

    def delete_model(self, request: HttpRequest, obj: Role) -> None:
        services.role_delete(actor=_actor(request), role=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Role]) -> None:
        for role in queryset:
            services.role_delete(actor=_actor(request), role=role)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        role = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if role is not None:
            context["history"] = history_rows(selectors.role_history(role)[:100])
        return super().change_view(request, object_id, form_url, extra_context=context)

    change_form_template = "admin/registry/role/change_form.html"


@admin.register(Tool)
class ToolAdmin(admin.ModelAdmin):
    """The tools agents may be granted; their contracts and rules are under Policy."""

    list_display = ["name", "side_effect", "risk", "enforce_hardening", "grant_count", "updated_at"]
    list_filter = ["side_effect", "default_risk", "enforce_hardening", "guardian_precheck"]
    search_fields = ["name", "description"]
    fields = ["name", "description", "side_effect", "default_risk", "enforce_hardening", "guardian_precheck"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tool]:
        return selectors.tool_list()

    def get_readonly_fields(self, request: HttpRequest, obj: Tool | None = None) -> list[str]:
        # Grants, contracts and recorded calls refer to the name.
        return ["name"] if obj is not None else []

    @admin.display(description="Default risk", ordering="default_risk")
    def risk(self, tool: Tool) -> str:
        return risk_badge(tool.default_risk)

    @admin.display(description="Grants", ordering="grant_count")
    def grant_count(self, tool: Tool) -> int:
        return getattr(tool, "grant_count", 0)

    def save_model(self, request: HttpRequest, obj: Tool, form: Any, change: bool) -> None:
        data = {name: form.cleaned_data[name] for name in services.TOOL_EDITABLE if name in form.cleaned_data}
        if change:
            saved = services.tool_update(
                actor=_actor(request), tool=obj, **{k: v for k, v in data.items() if k in form.changed_data}
            )
        else:
            saved = services.tool_create(actor=_actor(request), name=form.cleaned_data["name"], **data)
        obj.__dict__.update(saved.__dict__)

    def has_delete_permission(self, request: HttpRequest, obj: Tool | None = None) -> bool:
        # Tools are referenced by grants, contracts and the record of past calls; retire them instead.
        return False


@admin.register(Grant)
class GrantAdmin(admin.ModelAdmin):
    """All grants across agents and roles, to review who may use which tool."""

    list_display = [
        "tool",
        "holder",
        "constraints_summary",
        "rate_limit_per_minute",
        "valid_until",
        "granted_by",
        "created_at",
    ]
    list_filter = ["tool", "role", "granted_by"]
    search_fields = ["tool__name", "agent__slug", "agent__name", "role__slug", "reason"]
    list_select_related = ["agent", "role", "granted_by"]
    autocomplete_fields = ["agent"]
    fields = [
        "agent",
        "role",
        "tool",
        "constraints",
        "rate_limit_per_minute",
        "valid_from",
        "valid_until",
        "reason",
        "granted_by",
    ]
    readonly_fields = ["granted_by"]
    formfield_overrides = {
        Grant._meta.get_field("constraints").__class__: {"widget": PrettyJSONWidget(attrs={"rows": 6, "cols": 60})},
    }

    @admin.display(description="Holder")
    def holder(self, grant: Grant) -> str:
        if grant.agent_id:
            return format_html("agent <strong>{}</strong>", grant.agent)
        return format_html("role <strong>{}</strong>", grant.role)

    @admin.display(description="Constraints")
    def constraints_summary(self, grant: Grant) -> str:
        if not grant.constraints:
            return "—"
        return format_html("<code>{}</code>", json.dumps(grant.constraints, sort_keys=True)[:120])

    def save_model(self, request: HttpRequest, obj: Grant, form: Any, change: bool) -> None:
        fields = {name: form.cleaned_data.get(name) for name in services.GRANT_EDITABLE if name in form.cleaned_data}
        if change:
            saved = services.grant_update(actor=_actor(request), grant=obj, **fields)
        else:
            reason = fields.pop("reason", "")
            saved = services.grant_create(actor=_actor(request), reason=reason, **fields)
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request: HttpRequest, obj: Grant) -> None:
        services.grant_delete(actor=_actor(request), grant=obj, reason="Removed in the admin.")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        for grant in queryset:
            services.grant_delete(actor=_actor(request), grant=grant, reason="Removed in the admin.")


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    """Every key in the fleet, to find expired, unused or forgotten ones. Read-only here."""

    list_display = ["masked", "agent", "name", "state_pill", "created_at", "expires_at", "last_used_at"]
    list_filter = ["agent__status", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "agent__slug", "agent__name"]
    list_select_related = ["agent"]
    fields = readonly_fields = (
        "agent",
        "name",
        "prefix",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "revoked_reason",
        "last_used_at",
        "replaces",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # Keys are issued from the agent page, where they are shown once.

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # Revoke instead: the record stays.

    masked = staticmethod(masked_key)
    state_pill = staticmethod(key_state_badge)

    def get_urls(self) -> list[Any]:
        wrap = self.admin_site.admin_view
        return [
            path("<uuid:credential_id>/rotate/", wrap(self.rotate_view), name="registry_credential_rotate"),
            path("<uuid:credential_id>/revoke/", wrap(self.revoke_view), name="registry_credential_revoke"),
            *super().get_urls(),
        ]

    def _confirm(
        self, request: HttpRequest, credential: Credential, *, title: str, message: str, label: str, error: str | None
    ) -> HttpResponse:
        return TemplateResponse(
            request,
            "admin/registry/confirm_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.opts,
                "title": title,
                "subject": credential,
                "message": message,
                "needs_reason": False,
                "reason_label": "Reason (optional)",
                "confirm_label": label,
                "danger": True,
                "error": error,
                "cancel_url": reverse("admin:registry_agent_change", args=[credential.agent_id]),
            },
        )

    def rotate_view(self, request: HttpRequest, credential_id: Any) -> HttpResponse:
        """Confirm, then replace the key with a new one shown once."""
        credential = get_object_or_404(Credential.objects.select_related("agent"), pk=credential_id)
        if not (
            request.user.has_perm("registry.change_credential") and request.user.has_perm("registry.add_credential")
        ):
            raise PermissionDenied
        error = None
        if request.method == "POST":
            try:
                issued = services.credential_rotate(actor=_actor(request), credential=credential)
            except WardenError as exc:
                error = exc.message
            else:
                return key_shown_once(
                    request, self.admin_site, credential.agent, issued, title=f"Rotated key for {credential.agent.name}"
                )
        return self._confirm(
            request,
            credential,
            title=f"Rotate key {credential}?",
            label="Rotate",
            message="A new key is issued and shown once; this key stops working immediately.",
            error=error,
        )

    def revoke_view(self, request: HttpRequest, credential_id: Any) -> HttpResponse:
        """Confirm, then revoke the key at once."""
        credential = get_object_or_404(Credential.objects.select_related("agent"), pk=credential_id)
        if not request.user.has_perm("registry.change_credential"):
            raise PermissionDenied
        if request.method == "POST":
            services.credential_revoke(
                actor=_actor(request), credential=credential, reason=request.POST.get("reason", "")
            )
            self.message_user(request, f"Key {credential} revoked.", messages.SUCCESS)
            return HttpResponseRedirect(reverse("admin:registry_agent_change", args=[credential.agent_id]))
        return self._confirm(
            request,
            credential,
            title=f"Revoke key {credential}?",
            label="Revoke",
            message="The agent's requests with this key will be refused from now on.",
            error=None,
        )


@admin.register(ChangeRecord)
class ChangeRecordAdmin(admin.ModelAdmin):
    """The registry's change history across all agents, roles, grants and keys. Read-only."""

    list_display = ["at", "action", "actor_label", "subject_type", "agent", "reason"]
    list_filter = ["action", "actor_kind", "subject_type"]
    search_fields = ["actor_label", "subject_id", "reason", "agent__slug"]
    list_select_related = ["agent"]
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
