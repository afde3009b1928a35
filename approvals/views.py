"""The approval queue pages: /approvals/ (pending and decided), one approval, and the vote form's target.

Approvers read everything a decision needs on one card (the call's arguments with sensitive
values masked, why it escalated, the agent and its recent decisions, votes so far, the due
time) and vote with a comment; the vote goes through `services.vote` and the page redirects
back with a message (post/redirect/get). When another approver settled the item first, the
page says who did, as a warning, never as an error page.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from approvals import selectors, services
from approvals.choices import ApprovalState, Verdict
from approvals.context_processors import VIEW_PERMISSION
from approvals.forms import DECIDED_TAB, PENDING_TAB, QueueFilterForm, VoteForm
from approvals.models import Approval, Vote
from audit.sensitive import redact
from core.errors import Conflict, InvalidInput, NotFound, WardenError
from policy.models import ToolCall

PAGE_SIZE = 25
DUE_SOON = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class Due:
    """When an item is due, as the page says it: "in 12 min", or "overdue"."""

    at: dt.datetime
    label: str
    is_overdue: bool
    is_soon: bool


@dataclass(frozen=True)
class Score:
    """One guardian's assessment of the call, as the page shows it."""

    name: str  # the guardian
    value: float
    action: str
    subject: str
    finding: str  # the top finding's message, if any


@dataclass(frozen=True)
class Item:
    """One approval as a card of the queue or the detail page shows it."""

    approval: Approval
    arguments: str  # indented JSON, every sensitive value replaced by the marker
    votes: list[Vote]
    approvals: int  # approving votes so far
    still_needed: str
    recent_calls: list[ToolCall]
    scores: list[Score] | None  # None: nothing scored this call (or no guardian installed)
    due: Due
    my_vote: Vote | None
    form: VoteForm | None  # None: this person may not vote on it (now)

    @property
    def progress_percent(self) -> int:
        required = max(self.approval.required_approvals, 1)
        return min(100, round(100 * self.approvals / required))


def may_view_queue(user: Any) -> bool:
    """Active staff holding `approvals.view_approval` (approvers, viewers, auditors, Warden admins)."""
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


def _check_may_view(user: Any) -> None:
    if not may_view_queue(user):
        raise PermissionDenied("The approval queue needs the approvals.view_approval permission (approvers, viewers).")


def due(at: dt.datetime, now: dt.datetime) -> Due:
    """The due time relative to now, to the minute."""
    seconds = int((at - now).total_seconds())
    if seconds <= 0:
        label = "overdue"
    elif seconds < 60:
        label = f"in {seconds} s"
    elif seconds < 3600:
        label = f"in {seconds // 60} min"
    elif seconds < 48 * 3600:
        hours, minutes = divmod(seconds // 60, 60)
        label = f"in {hours} h" + (f" {minutes} min" if minutes else "")
    else:
        label = f"in {seconds // 86400} days"
    return Due(at=at, label=label, is_overdue=seconds <= 0, is_soon=0 < seconds <= DUE_SOON.total_seconds())


def pretty_arguments(call: ToolCall) -> str:
    """The call's arguments indented for reading; masked (sensitive) values shown as the marker."""
    return json.dumps(redact(call.arguments), indent=2, ensure_ascii=False)


def _scores(call: ToolCall) -> list[Score] | None:
    """The guardians' assessments of the call (prefetched by the selector), through the relation alone."""
    if not hasattr(call, "assessments"):
        return None
    rows = [
        Score(
            name=str(assessment.guardian),
            value=assessment.value,
            action=assessment.action,
            subject=assessment.subject.replace("_", " "),
            finding=(assessment.reasons[0].get("message", "") if assessment.reasons else ""),
        )
        for assessment in call.assessments.all()
    ]
    return rows or None


def build_item(approval: Approval, *, user: Any, now: dt.datetime, next_url: str, form: VoteForm | None = None) -> Item:
    """A card for one approval loaded by the selectors (no query of its own)."""
    votes = list(approval.votes.all())
    my_vote = next((vote for vote in votes if vote.approver_id == user.pk), None)
    item_due = due(approval.due_at, now)
    votable = approval.is_pending and not item_due.is_overdue and my_vote is None and services.can_decide(user)
    if votable and form is None:
        form = VoteForm(initial={"next": next_url}, approval_id=approval.pk)
    recent = [call for call in getattr(approval.agent, "recent_calls", []) if call.pk != approval.tool_call_id]
    return Item(
        approval=approval,
        arguments=pretty_arguments(approval.tool_call),
        votes=votes,
        approvals=sum(1 for vote in votes if vote.verdict == Verdict.APPROVE),
        still_needed=services.still_needed(approval, votes, approval.agent.owner_id) if approval.is_pending else "",
        recent_calls=recent[: selectors.RECENT_CALLS],
        scores=_scores(approval.tool_call),
        due=item_due,
        my_vote=my_vote,
        form=form if votable else None,
    )


def _base_context(request: HttpRequest, pending: int) -> dict[str, Any]:
    return {
        **admin.site.each_context(request),
        "title": f"Approvals ({pending} pending)",
        "is_nav_sidebar_enabled": False,  # the cards need the width
        "time_zone": timezone.get_current_timezone_name(),
        "pending_count": pending,
        # The navigation badge reads this count instead of counting again (see context_processors).
        "approvals_pending": pending,
        "can_decide": services.can_decide(request.user),
    }


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """GET /approvals/: pending items soonest due first (riskiest first among equals), or the decided ones."""
    _check_may_view(request.user)
    form = QueueFilterForm(request.GET)
    tab = DECIDED_TAB if request.GET.get("state") == DECIDED_TAB else PENDING_TAB
    filters = form.filters()
    if tab == DECIDED_TAB:
        approvals = selectors.approval_decided_list(**filters)
    else:
        approvals = selectors.approval_queue(**filters)
    if not form.is_valid():
        approvals = approvals.none()  # a malformed slug: show nothing, and say why above the list
    page = Paginator(approvals, PAGE_SIZE).get_page(request.GET.get("page"))
    unfiltered_pending = tab != DECIDED_TAB and form.is_valid() and not form.is_filtered()
    pending = page.paginator.count if unfiltered_pending else selectors.pending_count()
    now = timezone.now()
    next_url = request.get_full_path()
    items = []
    if tab != DECIDED_TAB:
        items = [build_item(approval, user=request.user, now=now, next_url=next_url) for approval in page]
    context = {
        **_base_context(request, pending),
        "tab": tab,
        "subtitle": "Decided" if tab == DECIDED_TAB else None,
        "form": form,
        "is_filtered": form.is_valid() and form.is_filtered(),
        "page": page,
        "items": items,
    }
    return TemplateResponse(request, "approvals/queue.html", context)


@login_required
def detail(request: HttpRequest, approval_id: Any) -> HttpResponse:
    """GET /approvals/<id>/: one approval in full, with the vote form while it is pending."""
    _check_may_view(request.user)
    return _detail_response(request, approval_id)


def _detail_response(request: HttpRequest, approval_id: Any, form: VoteForm | None = None) -> HttpResponse:
    approval = selectors.approval_get(approval_id)
    if approval is None:
        raise Http404("No approval has this id.")
    next_url = reverse("approvals:detail", args=[approval.pk])
    item = build_item(approval, user=request.user, now=timezone.now(), next_url=next_url, form=form)
    context = {
        **_base_context(request, selectors.pending_count()),
        "subtitle": f"{approval.tool} by {approval.agent.slug}",
        "item": item,
        "vote_refused": form is not None,
    }
    return TemplateResponse(request, "approvals/detail.html", context)


def _back(request: HttpRequest, form: VoteForm, approval_id: Any) -> str:
    """Where to return after voting: the page the form was on, when it is one of ours."""
    target = str(form.data.get("next") or "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return reverse("approvals:detail", args=[approval_id])


def _settled_message(approval: Approval) -> str:
    who = f"{approval.tool} by {approval.agent.slug}"
    if approval.state == ApprovalState.APPROVED:
        return f"Approved: {who}. The agent may now make the call."
    return f"Rejected: {who}. The agent is told why."


@require_POST
@login_required
def vote(request: HttpRequest, approval_id: Any) -> HttpResponse:
    """POST /approvals/<id>/vote: record the logged-in approver's verdict, then go back (PRG).

    A missing comment on a rejection shows the form again with the error beside the field, the
    comment as typed kept; a call settled meanwhile by someone else is a warning that names them.
    """
    _check_may_view(request.user)
    if not services.can_decide(request.user):
        raise PermissionDenied("Only members of approvers (with approvals.decide_approval) may decide.")
    form = VoteForm(request.POST, approval_id=approval_id)
    back = _back(request, form, approval_id)
    if not form.is_valid():
        return _detail_response(request, approval_id, form=form)
    try:
        approval = services.vote(
            approval_id=approval_id,
            user=cast(AbstractBaseUser, request.user),  # logged in (login_required)
            verdict=form.cleaned_data["verdict"],
            comment=form.cleaned_data["comment"],
        )
    except services.AlreadySettled as settled:
        messages.warning(request, settled.message)
        return HttpResponseRedirect(back)
    except services.PermissionDenied as refused:
        raise PermissionDenied(refused.message) from None
    except NotFound:
        raise Http404("No approval has this id.") from None
    except InvalidInput as invalid:
        detail = invalid.detail if isinstance(invalid.detail, dict) else {}
        for field, errors in detail.items():
            form.add_error(field if field in form.fields else None, errors)
        if not detail:
            form.add_error(None, invalid.message)
        return _detail_response(request, approval_id, form=form)
    except Conflict as conflict:  # a second vote by the same person, an agent no longer active
        messages.warning(request, conflict.message)
        return HttpResponseRedirect(back)
    except WardenError as error:  # any other refusal: say it on the page, never an error page
        messages.error(request, error.message)
        return HttpResponseRedirect(back)
    if approval.state != ApprovalState.PENDING:
        messages.success(request, _settled_message(approval))
    else:
        votes = getattr(approval, "votes_cast", None) or list(approval.votes.all())
        needed = services.still_needed(approval, votes, approval.agent.owner_id)
        messages.success(request, f"Your approval is recorded; {needed}." if needed else "Your approval is recorded.")
    return HttpResponseRedirect(back)
