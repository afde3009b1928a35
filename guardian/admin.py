"""Guardians in the admin: configure them (warden-admins), read what they found (everyone with view).

Assessments, scores and quarantines are records: nobody adds, changes or deletes them here.
A quarantine is released from the agent's page (the registry's status change, with a reason).
The tool-call page of the policy admin gets the call's assessments as an inline.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from core.actors import Actor
from core.admin import ReadOnlyAdminMixin
from guardian import services
from guardian.models import GUARDIAN_ROLE, AgentProfile, Assessment, Guardian, Quarantine, ScoreRecord
from policy.admin import ToolCallAdmin
from registry.models import Agent


def _pre(value: Any) -> str:
    return format_html("<pre class='wd-json'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


def _reason_list(reasons: list[dict[str, Any]]) -> str:
    if not reasons:
        return "—"
    return format_html(
        "<ul class='wd-reasons'>{}</ul>",
        format_html_join(
            "",
            "<li><code>{}</code> {} <small>{}</small></li>",
            ((r.get("code", ""), r.get("message", ""), r.get("where", "")) for r in reasons[:8]),
        ),
    )


def _value(value: float, action: str) -> str:
    # format_html escapes its arguments into strings first: format the number before.
    return format_html("<span class='wd-score wd-score-{}'>{}</span>", action, f"{value:.2f}")


class GuardianForm(forms.ModelForm):
    class Meta:
        model = Guardian
        fields = [
            "agent",
            "enabled",
            "watched_agents",
            "watched_roles",
            "watched_tools",
            "scorers",
            "flag_threshold",
            "escalate_threshold",
            "quarantine_threshold",
            "precheck",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "agent" in self.fields:
            self.fields["agent"].queryset = Agent.objects.filter(role__slug=GUARDIAN_ROLE)  # type: ignore[attr-defined]
            self.fields["agent"].help_text = "A registered agent with the role 'guardian' (its owner answers for it)."


@admin.register(Guardian)
class GuardianAdmin(admin.ModelAdmin):
    form = GuardianForm
    list_display = ["guardian_name", "enabled", "scorer_weights", "thresholds", "precheck", "watching"]
    list_filter = ["enabled", "precheck"]
    search_fields = ["agent__name", "agent__slug"]
    filter_horizontal = ["watched_agents", "watched_roles"]
    list_select_related = ["agent"]

    @admin.display(description="Guardian", ordering="agent__name")
    def guardian_name(self, guardian: Guardian) -> str:
        return guardian.agent.name

    @admin.display(description="Scorers (weight)")
    def scorer_weights(self, guardian: Guardian) -> str:
        return ", ".join(f"{name} {weight:g}" for name, weight in sorted(guardian.scorers.items()))

    @admin.display(description="Flag / escalate / quarantine")
    def thresholds(self, guardian: Guardian) -> str:
        return (
            f"{guardian.flag_threshold:.2f} / {guardian.escalate_threshold:.2f} / {guardian.quarantine_threshold:.2f}"
        )

    @admin.display(description="Watches")
    def watching(self, guardian: Guardian) -> str:
        agents = guardian.watched_agents.count()
        roles = guardian.watched_roles.count()
        tools = ", ".join(guardian.watched_tools) or "every tool"
        who = "every agent" if not agents and not roles else f"{agents} agent(s), {roles} role(s)"
        return f"{who}; {tools}"

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the many-to-many fields are saved, so the record holds the whole configuration.
        services.record_configuration(form.instance, actor=Actor.from_user(request.user), created=not change)

    def has_delete_permission(self, request: HttpRequest, obj: Guardian | None = None) -> bool:
        return False  # disable a guardian instead: its assessments keep pointing at it


class ScoreInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ScoreRecord
    extra = 0
    fields = ["scorer", "weight", "value", "label", "findings", "latency_ms"]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="Findings")
    def findings(self, score: ScoreRecord) -> str:
        return _reason_list(score.reasons)


@admin.register(Assessment)
class AssessmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "agent", "tool", "subject", "score", "action", "disagreement", "guardian", "stage"]
    list_filter = ["action", "stage", "subject", "disagreement", "guardian"]
    search_fields = ["agent__slug", "tool", "tool_call__id"]
    list_select_related = ["guardian__agent", "agent"]
    date_hierarchy = "created_at"
    inlines = [ScoreInline]
    fields = [
        "created_at",
        "guardian",
        "agent",
        "tool_call",
        "tool",
        "stage",
        "subject",
        "score",
        "action",
        "disagreement",
        "findings",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="Value", ordering="value")
    def score(self, assessment: Assessment) -> str:
        return _value(assessment.value, assessment.action)

    @admin.display(description="Findings")
    def findings(self, assessment: Assessment) -> str:
        return _reason_list(assessment.reasons)


@admin.register(Quarantine)
class QuarantineAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["agent", "started_at", "started_by_label", "short_reason", "released_at", "released_by_label"]
    list_filter = ["released_at"]
    search_fields = ["agent__slug", "reason", "release_reason"]
    list_select_related = ["agent"]
    fields = [
        "agent",
        "guardian",
        "assessment",
        "tool_call",
        "reason",
        "started_at",
        "started_by_label",
        "released_at",
        "released_by_label",
        "release_reason",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="Why")
    def short_reason(self, quarantine: Quarantine) -> str:
        return quarantine.reason if len(quarantine.reason) < 90 else quarantine.reason[:88] + "…"


@admin.register(AgentProfile)
class AgentProfileAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["agent", "observations", "observed_until", "updated_at"]
    search_fields = ["agent__slug"]
    list_select_related = ["agent"]
    fields = ["agent", "observations", "observed_until", "destinations_pretty", "baseline_pretty"]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    @admin.display(description="Known destinations")
    def destinations_pretty(self, profile: AgentProfile) -> str:
        return _pre(profile.destinations)

    @admin.display(description="Behaviour baseline")
    def baseline_pretty(self, profile: AgentProfile) -> str:
        return _pre(profile.baseline)


class AssessmentInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The guardians' assessments on the tool-call page of the policy admin."""

    model = Assessment
    fk_name = "tool_call"
    extra = 0
    verbose_name_plural = "Guardian assessments"
    fields = ["guardian", "stage", "subject", "score", "action", "disagreement", "scores_summary", "findings"]
    readonly_fields = fields  # type: ignore[assignment]  # the same plain names

    def get_queryset(self, request: HttpRequest) -> QuerySet[Assessment]:
        return super().get_queryset(request).select_related("guardian__agent").prefetch_related("scores")

    @admin.display(description="Value")
    def score(self, assessment: Assessment) -> str:
        return _value(assessment.value, assessment.action)

    @admin.display(description="Scorers")
    def scores_summary(self, assessment: Assessment) -> str:
        return ", ".join(f"{score.scorer} {score.value:.2f}" for score in assessment.scores.all()) or "—"

    @admin.display(description="Findings")
    def findings(self, assessment: Assessment) -> str:
        return _reason_list(assessment.reasons)


ToolCallAdmin.inlines = [*ToolCallAdmin.inlines, AssessmentInline]
