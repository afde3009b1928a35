"""Policy in the Django admin: contracts (pretty-printed schemas, hardening report), rules, tool calls.

Saves go through `policy.services`, so admin changes are validated, recorded and move the
policy version exactly like API changes. Active contract versions are read-only (a change is a
new version); tool calls are the record of the decision path and are never edited here.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from audit.sensitive import redact
from core.actors import Actor
from core.errors import WardenError
from policy import services
from policy.choices import ContractStatus
from policy.models import ContractVersion, Rule, ToolCall
from registry.admin import PrettyJSONWidget, _json


def _actor(request: HttpRequest) -> Actor:
    return Actor.from_user(request.user)


def _badge(kind: str, value: str, label: str | None = None) -> str:
    return format_html('<span class="wd-badge wd-{}-{}">{}</span>', kind, value, label or value)


def _pre(value: Any) -> str:
    return format_html('<pre class="wd-schema">{}</pre>', _json(value))


# Contracts -----------------------------------------------------------------------------------


class ContractForm(forms.ModelForm):
    class Meta:
        model = ContractVersion
        fields = ["tool", "input_schema", "output_schema", "notes"]
        widgets = {
            "input_schema": PrettyJSONWidget(attrs={"rows": 18, "cols": 80}),
            "output_schema": PrettyJSONWidget(attrs={"rows": 8, "cols": 80}),
        }

    def _post_clean(self) -> None:
        # The version number is assigned by the service; validate the schemas with a placeholder.
        if self.instance.version is None:
            self.instance.version = 0
        super()._post_clean()  # type: ignore[misc]  # django-stubs omit this ModelForm hook


@admin.register(ContractVersion)
class ContractVersionAdmin(admin.ModelAdmin):
    """Versions of each tool's contract; active ones are read-only and can be deprecated."""

    form = ContractForm
    list_display = ["__str__", "tool", "version", "status_badge", "findings", "activated_at", "created_at"]
    list_filter = ["status", "tool"]
    search_fields = ["tool__name", "notes"]
    actions = ["activate", "deprecate"]
    readonly_fields = ["version", "status_badge", "hardening", "input_pretty", "output_pretty", "activated_at"]

    def get_fields(self, request: HttpRequest, obj: ContractVersion | None = None) -> Any:
        if obj is None:
            return ["tool", "input_schema", "output_schema", "notes"]
        if obj.status == ContractStatus.DRAFT:
            return ["tool", "version", "status_badge", "hardening", "input_schema", "output_schema", "notes"]
        return [
            "tool",
            "version",
            "status_badge",
            "activated_at",
            "hardening",
            "input_pretty",
            "output_pretty",
            "notes",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: ContractVersion | None = None) -> list[str]:
        fields = list(self.readonly_fields)
        if obj is not None:
            fields.append("tool")
            if obj.status != ContractStatus.DRAFT:
                fields.append("notes")
        return fields

    @admin.display(description="Status", ordering="status")
    def status_badge(self, contract: ContractVersion) -> str:
        return _badge("contract", contract.status, ContractStatus(contract.status).label)

    @admin.display(description="Hardening")
    def findings(self, contract: ContractVersion) -> str:
        count = len(contract.hardening_report or [])
        return format_html('<span class="wd-ok">hardened</span>') if not count else f"{count} finding(s)"

    @admin.display(description="Hardening report")
    def hardening(self, contract: ContractVersion) -> str:
        report = contract.hardening_report or []
        if not report:
            return format_html('<span class="wd-ok">{}</span>', "Nothing an attacker could slip through was found.")
        items = format_html_join(
            "", "<li><code>{}</code> {} <small>({})</small></li>", ((f["at"], f["message"], f["code"]) for f in report)
        )
        return format_html('<ul class="wd-findings">{}</ul>', items)

    @admin.display(description="Input schema")
    def input_pretty(self, contract: ContractVersion) -> str:
        return _pre(contract.input_schema)

    @admin.display(description="Output schema")
    def output_pretty(self, contract: ContractVersion) -> str:
        return _pre(contract.output_schema)

    def save_model(self, request: HttpRequest, obj: ContractVersion, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            saved = services.contract_update(
                actor=_actor(request),
                contract=obj,
                **{k: data[k] for k in services.CONTRACT_EDITABLE if k in form.changed_data},
            )
        else:
            saved = services.contract_create(
                actor=_actor(request),
                tool=data["tool"],
                input_schema=data["input_schema"],
                output_schema=data.get("output_schema") or {},
                notes=data.get("notes", ""),
            )
        obj.__dict__.update(saved.__dict__)

    def has_change_permission(self, request: HttpRequest, obj: ContractVersion | None = None) -> bool:
        if obj is not None and obj.status != ContractStatus.DRAFT:
            return False  # immutable once active: the page is read-only; use the list actions
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: ContractVersion | None = None) -> bool:
        return False  # recorded calls name contract versions; deprecate instead

    def _move(self, request: HttpRequest, queryset: QuerySet[ContractVersion], to: str) -> None:
        for contract in queryset:
            try:
                services.contract_set_status(actor=_actor(request), contract=contract, to=to)
            except (WardenError, ValidationError) as error:
                messages.error(request, f"{contract}: {getattr(error, 'message', error)}")
            else:
                messages.success(request, f"{contract} is now {to}.")

    @admin.action(description="Activate selected versions", permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[ContractVersion]) -> None:
        self._move(request, queryset, ContractStatus.ACTIVE)

    @admin.action(description="Deprecate selected versions", permissions=["change"])
    def deprecate(self, request: HttpRequest, queryset: QuerySet[ContractVersion]) -> None:
        self._move(request, queryset, ContractStatus.DEPRECATED)


# Rules ---------------------------------------------------------------------------------------


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = list(services.RULE_FIELDS)
        widgets = {"expression": forms.Textarea(attrs={"rows": 4, "cols": 80, "class": "vLargeTextField"})}


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    """CEL rules; a syntax error is refused at save with its line and column."""

    form = RuleForm
    list_display = ["name", "effect_badge", "mode_badge", "scope_label", "priority", "enabled", "expression_code"]
    list_filter = ["effect", "mode", "scope", "enabled"]
    search_fields = ["name", "expression", "description"]
    autocomplete_fields = ["scope_agent"]
    fieldsets = [
        (None, {"fields": ["name", "description"]}),
        (
            "Condition",
            {
                "fields": ["expression", "effect", "mode", "message"],
                "description": "CEL over <code>agent</code>, <code>tool</code>, <code>args</code>, "
                "<code>context</code> and <code>now</code>, e.g. <code>args.amount &gt; 10000</code>. "
                "Guard optional arguments with <code>has(args.x)</code>: a rule that fails to evaluate denies.",
            },
        ),
        ("Applies to", {"fields": ["scope", "scope_role", "scope_agent", "scope_tool", "priority", "enabled"]}),
        (
            "Approval (escalating rules)",
            {
                "fields": ["required_approvals", "approval_timeout_seconds", "on_expiry"],
                "description": "How the approval queue treats the calls this rule escalates.",
            },
        ),
    ]

    @admin.display(description="Effect", ordering="effect")
    def effect_badge(self, rule: Rule) -> str:
        return _badge("effect", rule.effect)

    @admin.display(description="Mode", ordering="mode")
    def mode_badge(self, rule: Rule) -> str:
        return _badge("mode", rule.mode)

    @admin.display(description="Scope")
    def scope_label(self, rule: Rule) -> str:
        target = rule.scope_role or rule.scope_agent or rule.scope_tool_id
        return f"{rule.scope}: {target}" if target else rule.scope

    @admin.display(description="Expression")
    def expression_code(self, rule: Rule) -> str:
        text = rule.expression if len(rule.expression) < 90 else rule.expression[:87] + "…"
        return format_html("<code>{}</code>", text)

    def save_model(self, request: HttpRequest, obj: Rule, form: Any, change: bool) -> None:
        data = {k: form.cleaned_data[k] for k in services.RULE_EDITABLE if k in form.cleaned_data}
        if change:
            saved = services.rule_update(
                actor=_actor(request), rule=obj, **{k: v for k, v in data.items() if k in form.changed_data}
            )
        else:
            saved = services.rule_create(actor=_actor(request), **data)
        obj.__dict__.update(saved.__dict__)

    def delete_model(self, request: HttpRequest, obj: Rule) -> None:
        services.rule_delete(actor=_actor(request), rule=obj, reason="Deleted in the admin.")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Rule]) -> None:
        for rule in queryset:
            services.rule_delete(actor=_actor(request), rule=rule, reason="Deleted in the admin.")


# Tool calls ----------------------------------------------------------------------------------


@admin.register(ToolCall)
class ToolCallAdmin(admin.ModelAdmin):
    """The record of every decision: read-only."""

    list_display = ["created_at", "agent", "tool", "decision_badge", "codes", "latency", "drift"]
    list_filter = ["decision", "contract_drift", "result_status", "tool"]
    search_fields = ["tool", "agent__slug", "id", "idempotency_key"]
    list_select_related = ["agent"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "created_at",
        "agent",
        "credential_prefix",
        "tool",
        "decision_badge",
        "reasons_pretty",
        "shadow_pretty",
        "arguments_pretty",
        "arguments_digest",
        "context_pretty",
        "idempotency_key",
        "contract_version",
        "policy_version",
        "latency_us",
        "token_expires_at",
        "result_status",
        "output_pretty",
        "usage_pretty",
        "cost",
        "contract_drift",
        "drift_pretty",
        "result_reported_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="Decision", ordering="decision")
    def decision_badge(self, call: ToolCall) -> str:
        return _badge("decision", call.decision)

    @admin.display(description="Reasons")
    def codes(self, call: ToolCall) -> str:
        return ", ".join(call.reason_codes()) or "—"

    @admin.display(description="Latency", ordering="latency_us")
    def latency(self, call: ToolCall) -> str:
        return f"{call.latency_us / 1000:.1f} ms"

    @admin.display(description="Drift", boolean=True, ordering="contract_drift")
    def drift(self, call: ToolCall) -> bool:
        return call.contract_drift

    @admin.display(description="Reasons")
    def reasons_pretty(self, call: ToolCall) -> str:
        return _pre(call.reasons)

    @admin.display(description="Shadow rules")
    def shadow_pretty(self, call: ToolCall) -> str:
        return _pre(call.shadow)

    @admin.display(description="Arguments")
    def arguments_pretty(self, call: ToolCall) -> str:
        return _pre(redact(call.arguments))  # sensitive values: a marker, not even their digest

    @admin.display(description="Context")
    def context_pretty(self, call: ToolCall) -> str:
        return _pre(call.context)

    @admin.display(description="Output")
    def output_pretty(self, call: ToolCall) -> str:
        return _pre(redact(call.output))

    @admin.display(description="Usage")
    def usage_pretty(self, call: ToolCall) -> str:
        return _pre(call.usage)

    @admin.display(description="Contract drift")
    def drift_pretty(self, call: ToolCall) -> str:
        return _pre(call.drift)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ToolCall | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ToolCall | None = None) -> bool:
        return False
