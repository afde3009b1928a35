"""The fleet dashboards: overview, agent page, live decision feed, one tool call, sprawl report.

Server-rendered pages that stay live without a reload: htmx asks for the live part of a page
every WARDEN_DASHBOARD_REFRESH_SECONDS (the same view answers with a fragment when the request
comes from htmx), and static/telemetry/fleet.js redraws the charts from the data the fragment
carries. Anyone on staff with `policy.view_toolcall` (viewers, auditors, approvers, admins)
sees everything; the only change made here, quarantine and release, needs its own permission.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from core.conf import warden_settings
from core.errors import WardenError
from guardian import services as guardian_services
from guardian.models import Assessment, Quarantine
from policy.engine import Outcome
from policy.engine.reasons import CODE_DESCRIPTIONS
from policy.models import ToolCall
from registry import selectors as registry_selectors
from registry.choices import AgentStatus
from registry.models import Agent
from telemetry import fleet, sprawl
from telemetry.fleet import WindowData
from telemetry.forms import FeedFilterForm, QuarantineForm, ReleaseForm

WATCH_PERMISSION = "policy.view_toolcall"
ZERO_ID = "00000000-0000-0000-0000-000000000000"
REASONS = {str(code): text for code, text in CODE_DESCRIPTIONS.items()}


def may_watch(user: Any) -> bool:
    return bool(user.is_active and user.is_staff and user.has_perm(WATCH_PERMISSION))


def _watcher(request: HttpRequest) -> None:
    if not may_watch(request.user):
        raise PermissionDenied("The dashboards need staff access with permission to view tool calls (viewers).")


def _live(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _page(request: HttpRequest, template: str, context: dict[str, Any], *, fragment: str | None = None) -> HttpResponse:
    """The whole page, or only its live fragment when htmx asks for it."""
    live = bool(fragment) and _live(request)
    context = {"refresh_seconds": warden_settings.DASHBOARD_REFRESH_SECONDS, "live": live, **context}
    return TemplateResponse(request, fragment if live and fragment else template, context)


def _series(data: WindowData) -> str:
    """The charts' data: one point per step, decisions by outcome and the p95 latency."""
    return json.dumps(
        {
            "labels": [point.at.strftime("%H:%M" if data.window.span == 60 else "%d %H:%M") for point in data.points],
            "allow": [point.stats.allowed for point in data.points],
            "deny": [point.stats.denied for point in data.points],
            "escalate": [point.stats.escalated for point in data.points],
            "flagged": [point.stats.flagged for point in data.points],
            "p95": [point.stats.latency_percentile_ms(0.95) for point in data.points],
            "step": data.window.step,
        }
    )


def _kpis(data: WindowData) -> dict[str, Any]:
    total = data.total
    return {
        "decisions": total.decisions,
        "per_minute": total.decisions / max(data.window.length.total_seconds() / 60, 1),
        "deny_rate": fleet.rate(total.denied, total.decisions),
        "escalation_rate": fleet.rate(total.escalated, total.decisions),
        "anomaly_rate": fleet.rate(total.flagged, total.assessed),
        "p95_ms": total.latency_percentile_ms(0.95),
        "cost": total.cost,
    }


# Fleet overview -------------------------------------------------------------------------------


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    _watcher(request)
    window = fleet.window_for(request.GET.get("window"))
    now = timezone.now()
    data = fleet.window_data(window, now=now)
    agents = {agent.pk: agent for agent in Agent.objects.only("id", "slug", "name", "status")}
    top_tools = sorted(data.by_tool.items(), key=lambda item: -item[1].decisions)[:8]
    top_reasons = [(code, count, REASONS.get(code, "")) for code, count in data.reasons.most_common(8)]
    costs = [(agents.get(agent_id), cost) for agent_id, cost in fleet.cost_by_agent(data)[:8]]
    context = {
        "title": "Fleet overview",
        "window": window,
        "windows": fleet.WINDOWS.values(),
        "data": data,
        "kpis": _kpis(data),
        "now": fleet.fleet_now(),
        "series": _series(data),
        "top_tools": [(tool, stats, fleet.rate(stats.denied, stats.decisions)) for tool, stats in top_tools],
        "top_reasons": top_reasons,
        "costs": costs,
        "attention": fleet.needing_attention(data, now=now),
    }
    return _page(request, "telemetry/fleet/overview.html", context, fragment="telemetry/fleet/_overview_live.html")


# Agent page -------------------------------------------------------------------------------------


@login_required
@require_GET
def agent_page(request: HttpRequest, slug: str) -> HttpResponse:
    _watcher(request)
    agent = get_object_or_404(Agent.objects.select_related("owner", "role", "supervisor"), slug=slug)
    window = fleet.window_for(request.GET.get("window"))
    data = fleet.window_data(window, agent_id=agent.pk)
    recent = fleet.feed(fleet.FeedFilters(agent_id=agent.pk), limit=15)
    assessments = list(
        Assessment.objects.filter(agent=agent).select_related("guardian__agent").order_by("-created_at")[:10]
    )
    context = {
        "title": agent.name,
        "agent": agent,
        "window": window,
        "windows": fleet.WINDOWS.values(),
        "data": data,
        "kpis": _kpis(data),
        "series": _series(data),
        "recent": recent,
        "assessments": assessments,
        "reasons": data.reasons.most_common(6),
        "by_tool": sorted(data.by_tool.items(), key=lambda item: -item[1].decisions),
    }
    if _live(request):
        return _page(request, "", context, fragment="telemetry/fleet/_agent_live.html")
    credentials = list(registry_selectors.credential_list(agent).order_by("-created_at")[:5])
    context |= {
        "authority": [
            (effective, json.dumps(effective.grant.constraints, sort_keys=True))
            for effective in registry_selectors.agent_authority(agent)
        ],
        "scope_json": json.dumps(agent.scope, sort_keys=True),
        "supervised": list(Agent.objects.filter(supervisor=agent).only("slug", "name", "status")),
        "history": list(registry_selectors.agent_history(agent).select_related()[:15]),
        "quarantines": list(Quarantine.objects.filter(agent=agent).order_by("-started_at")[:5]),
        "credentials": credentials,
        # The registry's own mark, or the latest use of one of its keys, whichever is later.
        "last_seen": max(
            (moment for moment in (agent.last_seen_at, *(key.last_used_at for key in credentials)) if moment),
            default=None,
        ),
        "can_quarantine": guardian_services.can_quarantine(request.user)
        and agent.status in (AgentStatus.ACTIVE, AgentStatus.SUSPENDED),
        "can_release": guardian_services.can_release(request.user) and agent.status == AgentStatus.QUARANTINED,
        "quarantine_form": QuarantineForm(),
        "release_form": ReleaseForm(),
    }
    return _page(request, "telemetry/fleet/agent.html", context)


@login_required
@require_POST
def agent_quarantine(request: HttpRequest, slug: str) -> HttpResponse:
    _watcher(request)
    if not guardian_services.can_quarantine(request.user):
        raise PermissionDenied("Only people allowed to quarantine agents (warden-admins) may quarantine one.")

    def trip(agent: Agent, data: dict[str, Any]) -> str:
        guardian_services.quarantine_by_hand(agent_id=agent.pk, user=request.user, reason=data["reason"])
        return f"{agent.slug} is quarantined; calls on its behalf and by agents it supervises escalate."

    return _breaker(request, slug, QuarantineForm, trip, invalid="Say why the agent is quarantined.")


@login_required
@require_POST
def agent_release(request: HttpRequest, slug: str) -> HttpResponse:
    _watcher(request)
    if not guardian_services.can_release(request.user):
        raise PermissionDenied("Only people allowed to release quarantines (warden-admins) may release an agent.")

    def release(agent: Agent, data: dict[str, Any]) -> str:
        to = data["to"] or AgentStatus.ACTIVE
        guardian_services.release(agent_id=agent.pk, user=request.user, reason=data["reason"], to=to)
        return f"{agent.slug} is released ({to})."

    return _breaker(request, slug, ReleaseForm, release, invalid="Say why the agent may act again.")


def _breaker(
    request: HttpRequest,
    slug: str,
    form_class: type[forms.Form],
    act: Callable[[Agent, dict[str, Any]], str],
    *,
    invalid: str,
) -> HttpResponse:
    """Operate the circuit breaker from the agent page: a valid form, the service's answer as a message, back."""
    agent = get_object_or_404(Agent, slug=slug)
    form = form_class(request.POST)
    if not form.is_valid():
        messages.error(request, invalid)
        return _back_to(agent)
    try:
        done = act(agent, form.cleaned_data)
    except guardian_services.PermissionDenied as error:
        raise PermissionDenied(error.message) from None
    except WardenError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, done)
    return _back_to(agent)


def _back_to(agent: Agent) -> HttpResponse:
    return HttpResponseRedirect(reverse("telemetry:agent", args=[agent.slug]))


# Live decision feed ---------------------------------------------------------------------------------


@login_required
@require_GET
def feed(request: HttpRequest) -> HttpResponse:
    _watcher(request)
    form = FeedFilterForm(request.GET)
    context: dict[str, Any] = {"title": "Decision feed", "form": form, "rows": [], "reason_codes": REASONS}
    if not form.is_valid():
        return _page(request, "telemetry/fleet/feed.html", context)
    filters = form.filters()
    after, before = form.cursor("after"), form.cursor("before")
    rows = fleet.feed(filters, after=after, before=before)
    newest = (rows[0].call.created_at, str(rows[0].call.pk)) if rows else (after or (timezone.now(), ZERO_ID))
    context |= {
        "rows": rows,
        "cursor": FeedFilterForm.cursor_value(*newest),
        "older": FeedFilterForm.cursor_value(rows[-1].call.created_at, str(rows[-1].call.pk))
        if len(rows) == fleet.FEED_PAGE
        else None,
        "query": form.query_string(),
        "paged": before is not None,
    }
    if _live(request) and after is not None:
        # New rows go on top of the table; the poller comes back with the newest cursor (out of band).
        return _page(request, "", context, fragment="telemetry/fleet/_feed_new.html")
    return _page(request, "telemetry/fleet/feed.html", context)


# One tool call -------------------------------------------------------------------------------------


@login_required
@require_GET
def call_page(request: HttpRequest, call_id: str) -> HttpResponse:
    _watcher(request)
    try:
        detail = fleet.call_detail(call_id)
    except ToolCall.DoesNotExist:
        raise Http404("No tool call has this id.") from None
    call = detail.call
    settled = call.decision != Outcome.ESCALATE and (call.result_reported_at is not None or call.decision == "deny")
    context = {
        "title": f"{call.tool} by {call.agent.slug}",
        "detail": detail,
        "call": call,
        "settled": settled,
        "reason_codes": REASONS,
        "may_read_trail": request.user.has_perm("audit.view_auditrecord"),
    }
    return _page(request, "telemetry/fleet/call.html", context, fragment="telemetry/fleet/_call_live.html")


# Sprawl report ---------------------------------------------------------------------------------------


@login_required
@require_GET
def sprawl_report(request: HttpRequest) -> HttpResponse:
    _watcher(request)
    try:
        days = min(max(int(request.GET.get("days", 30)), 1), 3650)
    except ValueError:
        days = 30
    report = sprawl.sprawl_report(days)
    return _page(request, "telemetry/fleet/sprawl.html", {"title": "Sprawl report", "report": report, "days": days})
