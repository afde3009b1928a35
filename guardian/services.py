"""Every write of the guardian app: assessments, actions, quarantine and release, baselines.

Two paths lead here. After an agent reports a result, a Celery task (`guardian.tasks`) calls
`score_result`: each guardian watching the call judges the call and its output with all its
scorers, stores one `Assessment` per subject, and acts: flag, open a review in the approval
queue, or quarantine the agent. For tools marked for pre-checks, `guardian.precheck` judges
the call with the fast scorers before it is decided and records through `record_precheck`.

Exactly once: an assessment is unique per (guardian, call, stage, subject), and it is written
in the same transaction as its audit record and its action. A task that runs twice (a
redelivered message after a worker died) finds the row and does nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from opentelemetry.util.types import AttributeValue

import audit.services as audit
from approvals import services as approvals
from approvals.choices import ApprovalState
from approvals.models import Approval
from audit import sensitive
from core import revisions, tracing
from core.actors import Actor
from core.conf import warden_settings
from core.errors import Conflict, InvalidInput, NotFound, WardenError
from guardian import metrics, subjects
from guardian.choices import ACTION_RANK, Action, Stage
from guardian.ensemble import combine
from guardian.models import AgentProfile, Assessment, Guardian, Quarantine, ScoreRecord
from guardian.scorers import History, Score, ScoreReason, Subject, registry
from guardian.scorers import behaviour as behaviour_scorer
from guardian.scorers.base import ScorerUnavailable
from policy import snapshots
from policy.choices import DecisionOutcome
from policy.models import ToolCall
from registry import services as registry_services
from registry.choices import AgentStatus
from registry.models import Agent, ChangeRecord

logger = logging.getLogger(__name__)

RELEASE_PERMISSION = "guardian.release_quarantine"
QUARANTINE_PERMISSION = "guardian.add_quarantine"
FOLD_BATCH = 500  # calls folded into a baseline per step
MODEL_SCORERS = frozenset({"classifier", "slm"})  # verdicts of a model, rather than findings with evidence


class PermissionDenied(WardenError):
    code = "permission_denied"
    status = 403


# Which guardians watch what --------------------------------------------------------------------


@dataclass(frozen=True)
class Watch:
    """A guardian with what it watches, resolved once per policy version."""

    guardian: Guardian
    agent_ids: frozenset[str]
    role_slugs: frozenset[str]

    def covers(self, agent_id: str, role: str | None, tool: str, guardians: frozenset[str]) -> bool:
        if agent_id == str(self.guardian.agent_id) or not self.guardian.watches_tool(tool):
            return False
        if self.agent_ids or self.role_slugs:
            return agent_id in self.agent_ids or (role is not None and role in self.role_slugs)
        return agent_id not in guardians  # "every agent" means every agent but the guardians themselves


_watches: dict[str, Any] = {"state": None, "watches": ()}


def _current_watches() -> tuple[tuple[Watch, ...], frozenset[str]]:
    """Every enabled guardian and what it watches; rebuilt when the policy snapshot is (guardian changes move it)."""
    state = snapshots.current()
    if _watches["state"] is not state:
        guardians = (
            Guardian.objects.filter(enabled=True)
            .select_related("agent")
            .prefetch_related("watched_agents", "watched_roles")
        )
        watches = tuple(
            Watch(
                guardian=guardian,
                agent_ids=frozenset(str(agent.pk) for agent in guardian.watched_agents.all()),
                role_slugs=frozenset(role.slug for role in guardian.watched_roles.all()),
            )
            for guardian in guardians
        )
        everyone = frozenset(str(pk) for pk in Guardian.objects.values_list("agent_id", flat=True))
        _watches.update(state=state, watches=(watches, everyone))
    return _watches["watches"]


def guardians_for(agent_id: str, tool: str, *, precheck: bool = False) -> list[Guardian]:
    """The enabled, active guardians watching this agent and tool; no query while the policy is unchanged."""
    watches, guardian_agents = _current_watches()
    snapshot = snapshots.current().snapshot
    agent = snapshot.agents.get(str(agent_id))
    role = agent.role if agent is not None else None
    chosen = []
    for watch in watches:
        own = snapshot.agents.get(str(watch.guardian.agent_id))
        if own is None or own.status != AgentStatus.ACTIVE or (precheck and not watch.guardian.precheck):
            continue
        if watch.covers(str(agent_id), role, tool, guardian_agents):
            chosen.append(watch.guardian)
    return chosen


# Judging ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement:
    """One guardian's view of one subject, before it is stored."""

    guardian: Guardian
    subject: Subject
    value: float
    action: Action
    scores: tuple[Score, ...]
    skipped: tuple[str, ...] = ()  # scorers that could not run here (no model configured, ...)
    reasons: tuple[dict[str, Any], ...] = field(default=())


def judge(guardian: Guardian, subject: Subject, *, fast_only: bool = False) -> Judgement:
    """Run the guardian's scorers that can judge this kind of subject, and combine their values."""
    scores: list[Score] = []
    skipped: list[str] = []
    weights = {name: float(weight) for name, weight in guardian.scorers.items()}
    for name in sorted(weights):
        if weights[name] <= 0:
            continue
        try:
            scorer = registry.get(name)
            if subject.kind not in scorer.kinds or (fast_only and not scorer.fast):
                continue
            score = scorer.score(subject)
            if score.detail.get("applicable", True):  # a scorer may abstain on a subject it cannot judge
                scores.append(score)
        except (KeyError, ScorerUnavailable) as error:
            # Skipped loudly, never silently allowed: the other scorers still judge, and the record says so.
            logger.warning("Guardian %s: scorer %s unavailable: %s", guardian.agent.slug, name, error)
            skipped.append(name)
    value = combine(scores, weights)
    # Findings that name evidence (an instruction, a secret, a destination) lead; the models' verdicts
    # (classifier, SLM), which summarise rather than point, follow. Within each, the weightiest first.
    findings = [
        (score.scorer in MODEL_SCORERS, -reason.weight * weights.get(score.scorer, 1.0), index, reason, score.scorer)
        for index, score in enumerate(scores)
        for reason in score.reasons
    ]
    reasons = tuple(
        {**reason.as_dict(), "scorer": scorer} for *_, reason, scorer in sorted(findings, key=lambda row: row[:3])
    )[:12]
    return Judgement(
        guardian=guardian,
        subject=subject,
        value=value,
        action=guardian.action_for(value),
        scores=tuple(scores),
        skipped=tuple(skipped),
        reasons=reasons,
    )


def prepare_scorers(guardians: Iterable[Guardian]) -> None:
    """Build each scorer the guardians use once per process (cheap after the first call)."""
    for guardian in guardians:
        for name in guardian.scorers:
            try:
                registry.get(name)
            except (KeyError, ScorerUnavailable):
                continue  # judge() skips it and says so


def disagreements(judgements: Sequence[Judgement]) -> list[tuple[Judgement, Judgement]]:
    """Pairs of guardians whose values for the same subject differ by at least the margin."""
    margin = warden_settings.GUARDIAN_DISAGREEMENT_MARGIN
    pairs = []
    for index, first in enumerate(judgements):
        for second in judgements[index + 1 :]:
            if first.subject.kind == second.subject.kind and abs(first.value - second.value) >= margin:
                pairs.append((first, second))
    return pairs


# Storing ---------------------------------------------------------------------------------------


def guardian_actor(guardian: Guardian) -> Actor:
    return Actor(kind="agent", id=str(guardian.agent_id), label=guardian.agent.slug)


def _store(judgement: Judgement, call: ToolCall, *, stage: str, now: dt.datetime) -> Assessment | None:
    """Insert the assessment, its scores and its audit record; None if it was stored before (run twice).

    The scores are observed in `guardian.metrics` once this commits.
    """
    guardian = judgement.guardian
    try:
        with transaction.atomic():
            assessment = Assessment.objects.create(
                guardian=guardian,
                tool_call=call,
                agent_id=call.agent_id,
                tool=call.tool,
                stage=stage,
                subject=str(judgement.subject.kind),
                value=judgement.value,
                action=judgement.action,
                reasons=list(judgement.reasons),
                created_at=now,
            )
    except IntegrityError:
        return None
    weights = guardian.scorers
    ScoreRecord.objects.bulk_create(
        ScoreRecord(
            assessment=assessment,
            scorer=score.scorer,
            weight=float(weights.get(score.scorer, 1.0)),
            value=score.value,
            label=str(score.label),
            reasons=[reason.as_dict() for reason in score.reasons],
            detail=_json_safe(score.detail),
            latency_ms=score.latency_ms,
        )
        for score in judgement.scores
    )
    transaction.on_commit(lambda: metrics.record_scores(judgement.scores))
    if tracing.is_recording():
        _trace_scores(judgement, assessment, call)
    audit.append(
        actor=guardian_actor(guardian),
        action="guardian.assessed",
        subject_type="tool_call",
        subject_id=str(call.pk),
        agent_id=str(call.agent_id),
        tool=call.tool,
        at=now,
        payload={
            "assessment": assessment.pk,
            "guardian": str(guardian.agent_id),
            "tool_call": str(call.pk),
            "stage": stage,
            "subject": assessment.subject,
            "value": round(judgement.value, 6),
            "action": assessment.action,
            "scores": [
                {
                    "scorer": score.scorer,
                    "value": round(score.value, 6),
                    "label": str(score.label),
                    "codes": [reason.code for reason in score.reasons],
                }
                for score in judgement.scores
            ],
            "skipped": list(judgement.skipped),
        },
    )
    return assessment


def _trace_scores(judgement: Judgement, assessment: Assessment, call: ToolCall) -> None:
    """Each stored score as a `gen_ai.evaluation.result` event on the span in progress.

    That span is the decision's for a pre-check and the Celery task's for a result, both in the
    agent's trace. A finding located in an argument the contract marks sensitive is explained
    by its code alone: a pre-check judges the arguments before they are masked.
    """
    contract = snapshots.current().snapshot.contracts.get(call.tool, {}).get(call.contract_version or 0)
    secret = contract.sensitive_input if contract is not None else ()
    attributes: dict[str, AttributeValue] = {
        tracing.TOOL_CALL_ID: str(call.pk),
        tracing.GUARDIAN: judgement.guardian.agent.slug,
        tracing.GUARDIAN_STAGE: assessment.stage,
        tracing.GUARDIAN_SUBJECT: assessment.subject,
        tracing.ASSESSMENT_ID: assessment.pk,
        tracing.ASSESSMENT_VALUE: round(judgement.value, 6),
        tracing.ASSESSMENT_ACTION: str(assessment.action),
    }
    for score in judgement.scores:
        tracing.record_evaluation(
            name=score.scorer,
            value=score.value,
            label=str(score.label),
            explanation=" ".join(_explained(reason, secret) for reason in score.reasons),
            attributes=attributes,
        )


def _explained(reason: ScoreReason, secret: tuple[sensitive.Path, ...]) -> str:
    """A finding's message, or only its code where it points into a sensitive argument."""
    in_arguments = reason.where == "/arguments" or reason.where.startswith("/arguments/")
    if in_arguments and secret and sensitive.covers(reason.where.removeprefix("/arguments"), secret):
        return f"{reason.code} (in a sensitive argument)."
    return reason.message


def _json_safe(detail: Any) -> dict[str, Any]:
    safe: dict[str, Any] = {}
    for key, value in dict(detail or {}).items():
        if isinstance(value, bool | int | str) or value is None:
            safe[str(key)] = value
        elif isinstance(value, float):
            safe[str(key)] = round(value, 6)
        elif isinstance(value, list | tuple):
            safe[str(key)] = [item if isinstance(item, bool | int | float | str) else str(item) for item in value][:50]
        else:
            safe[str(key)] = str(value)[:200]
    return safe


def _act(assessment: Assessment, judgement: Judgement, call: ToolCall, *, stage: str) -> None:
    """Apply the assessment's action. Flags need nothing more than the row; pre-check escalations are the decision's."""
    if assessment.action == Action.QUARANTINE:
        quarantine(
            agent_id=str(call.agent_id),
            actor=guardian_actor(judgement.guardian),
            reason=_why(judgement),
            guardian=judgement.guardian,
            assessment=assessment,
            tool_call=call,
        )
    elif assessment.action == Action.ESCALATE and stage == Stage.RESULT:
        approvals.open_review(
            call,
            actor=guardian_actor(judgement.guardian),
            reasons=[{"code": "guardian_escalated", "message": _why(judgement), "assessment": assessment.pk}],
        )


def _why(judgement: Judgement) -> str:
    top = judgement.reasons[0]["message"] if judgement.reasons else "no single finding"
    return (
        f"Guardian {judgement.guardian.agent.slug} scored the {judgement.subject.kind.replace('_', ' ')} "
        f"{judgement.value:.2f} ({judgement.action}): {top}"
    )[:1000]


# After a result: the Celery task's body --------------------------------------------------------


def score_result(call_id: str) -> list[Assessment]:
    """Judge a reported call and its output with every guardian watching it, once; act on the values."""
    call = ToolCall.objects.filter(pk=call_id).first()
    if call is None or call.result_reported_at is None:
        return []
    guardians = guardians_for(str(call.agent_id), call.tool)
    if not guardians:
        fold(str(call.agent_id), until=call.created_at, include_until=True)
        return []
    profile = fold(str(call.agent_id), until=call.created_at, include_until=False)
    agent = Agent.objects.only("id", "description").get(pk=call.agent_id)
    state = snapshots.current()
    context = subjects.agent_context(state.snapshot, str(call.agent_id), description=agent.description)
    history = _history(profile)
    purpose = str((call.context or {}).get("purpose", "") or "")
    subject_list: list[Subject] = [
        subjects.call_subject(
            agent=context,
            tool=call.tool,
            arguments=call.arguments,
            context=call.context or {},
            history=history,
            at_hour=call.created_at.astimezone(dt.UTC).hour,
            decision=call.decision,
            call_id=str(call.pk),
        )
    ]
    output = subjects.output_subject(
        agent=context,
        tool=call.tool,
        arguments=call.arguments,
        output=call.output,
        purpose=purpose,
        call_id=str(call.pk),
    )
    if output is not None:
        subject_list.append(output)
    stored_before = set(
        Assessment.objects.filter(tool_call=call, stage=Stage.RESULT).values_list("guardian_id", "subject")
    )
    judgements = [
        judgement
        for guardian in guardians
        for subject in subject_list
        if (guardian.pk, str(subject.kind)) not in stored_before
        and (judgement := judge(guardian, subject)).scores  # none of its scorers judges this kind: no opinion
    ]
    stored: list[Assessment] = []
    now = timezone.now()
    with transaction.atomic():
        for judgement in sorted(judgements, key=lambda item: ACTION_RANK[item.action]):
            assessment = _store(judgement, call, stage=Stage.RESULT, now=now)
            if assessment is None:
                continue  # another run stored it first
            stored.append(assessment)
            _act(assessment, judgement, call, stage=Stage.RESULT)
        _review_disagreements(call)
    fold(str(call.agent_id), until=call.created_at, include_until=True)
    return stored


def _review_disagreements(call: ToolCall) -> None:
    """Two guardians apart by the margin on the same subject: mark both and ask a human."""
    margin = warden_settings.GUARDIAN_DISAGREEMENT_MARGIN
    rows = list(
        Assessment.objects.filter(tool_call=call, stage=Stage.RESULT).select_related("guardian__agent").order_by("id")
    )
    for index, first in enumerate(rows):
        for second in rows[index + 1 :]:
            if first.subject != second.subject or abs(first.value - second.value) < margin:
                continue
            if first.disagreement and second.disagreement:
                continue
            Assessment.objects.filter(pk__in=[first.pk, second.pk]).update(disagreement=True)
            first.disagreement = second.disagreement = True
            high, low = (first, second) if first.value >= second.value else (second, first)
            message = (
                f"Guardians disagree about the {first.subject.replace('_', ' ')}: {high.guardian.agent.slug} "
                f"scored {high.value:.2f}, {low.guardian.agent.slug} {low.value:.2f} "
                f"(margin {margin:.2f})."
            )
            approvals.open_review(
                call,
                actor=Actor(kind="system", id="guardian.disagreement", label="guardian disagreement"),
                reasons=[{"code": "guardian_disagreement", "message": message, "assessments": [high.pk, low.pk]}],
            )


# Before a decision: what a pre-check stores ---------------------------------------------------


def record_precheck(
    judgements: Iterable[Judgement], call: ToolCall, *, disagreeing: frozenset[int] = frozenset()
) -> None:
    """Store the pre-check's assessments with the call (same transaction); quarantine if one says so."""
    now = call.created_at or timezone.now()
    stored = []
    for judgement in judgements:
        assessment = _store(judgement, call, stage=Stage.PRECHECK, now=now)
        if assessment is None:
            continue
        if judgement.guardian.pk in disagreeing:
            Assessment.objects.filter(pk=assessment.pk).update(disagreement=True)
            assessment.disagreement = True
        stored.append(assessment)
        _act(assessment, judgement, call, stage=Stage.PRECHECK)
    # The API response describes them without reading them back.
    call._guardian_assessments = [  # type: ignore[attr-defined]
        Assessment.objects.select_related("guardian__agent").prefetch_related("scores").get(pk=row.pk) for row in stored
    ]


# Quarantine and release -----------------------------------------------------------------------


def quarantine(
    *,
    agent_id: str,
    actor: Actor,
    reason: str,
    guardian: Guardian | None = None,
    assessment: Assessment | None = None,
    tool_call: ToolCall | None = None,
) -> Quarantine | None:
    """Trip the circuit breaker: the agent becomes quarantined and its pending approvals are cancelled.

    Calls on its behalf and by agents it supervises escalate from the next decision on (the
    engine's containment). Quarantining an agent that already is returns the open quarantine.
    A retired or draft agent cannot act; nothing is done.
    """
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the agent is quarantined.", detail={"reason": ["Required."]})
    with transaction.atomic():
        agent = Agent.objects.select_for_update().get(pk=agent_id)
        open_quarantine = Quarantine.objects.filter(agent=agent, released_at__isnull=True).first()
        if open_quarantine is not None:
            return open_quarantine
        if agent.status not in (AgentStatus.ACTIVE, AgentStatus.SUSPENDED, AgentStatus.QUARANTINED):
            return None
        now = timezone.now()
        record = Quarantine.objects.create(
            agent=agent,
            guardian=guardian,
            assessment=assessment,
            tool_call=tool_call,
            reason=reason,
            started_at=now,
            started_by_label=actor.label,
        )
        transaction.on_commit(metrics.record_quarantine)
        if agent.status != AgentStatus.QUARANTINED:
            # The registry records the status change; approvals' post_save cancels the pending work.
            registry_services.agent_transition(actor=actor, agent=agent, to=AgentStatus.QUARANTINED, reason=reason)
        cancelled = Approval.objects.filter(agent=agent, state=ApprovalState.CANCELLED, settled_at__gte=now).count()
        audit.append(
            actor=actor,
            action="guardian.quarantined",
            subject_type="agent",
            subject_id=str(agent.pk),
            agent_id=str(agent.pk),
            tool=tool_call.tool if tool_call is not None else None,
            at=now,
            payload={
                "quarantine": record.pk,
                "agent": str(agent.pk),
                "guardian": str(guardian.agent_id) if guardian is not None else None,
                "assessment": assessment.pk if assessment is not None else None,
                "tool_call": str(tool_call.pk) if tool_call is not None else None,
                "reason": reason,
                "approvals_cancelled": cancelled,
            },
        )
    return record


def can_release(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.has_perm(RELEASE_PERMISSION))


def release(*, agent_id: Any, user: Any, reason: str, to: str = AgentStatus.ACTIVE) -> Quarantine:
    """A human lets a quarantined agent act again (or keeps it suspended), saying why."""
    if not can_release(user):
        raise PermissionDenied("Only people allowed to release quarantines (warden-admins) may release an agent.")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the agent may act again.", detail={"reason": ["Required to release."]})
    if to not in (AgentStatus.ACTIVE, AgentStatus.SUSPENDED):
        raise InvalidInput("Release to active or suspended.", detail={"to": ["One of: active, suspended."]})
    actor = Actor.from_user(user)
    with transaction.atomic():
        agent = Agent.objects.select_for_update().filter(pk=agent_id).first()
        if agent is None:
            raise NotFound("No agent has this id.")
        if agent.status != AgentStatus.QUARANTINED:
            raise Conflict(f"{agent.slug} is {agent.status}, not quarantined.", detail={"status": agent.status})
        # The registry records the change; its post_save (`agent_saved`) closes the open quarantine.
        registry_services.agent_transition(actor=actor, agent=agent, to=to, reason=reason)
        closed = Quarantine.objects.filter(agent=agent).order_by("-started_at").first()
        assert closed is not None
        assert closed.released_at is not None
    return closed


def can_quarantine(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and user.is_active and user.has_perm(QUARANTINE_PERMISSION))


def quarantine_by_hand(*, agent_id: Any, user: Any, reason: str) -> Quarantine:
    """A human trips the circuit breaker, saying why: the same containment as a guardian's quarantine."""
    if not can_quarantine(user):
        raise PermissionDenied("Only people allowed to quarantine agents (warden-admins) may quarantine one.")
    agent = Agent.objects.filter(pk=agent_id).first()
    if agent is None:
        raise NotFound("No agent has this id.")
    record = quarantine(agent_id=str(agent.pk), actor=Actor.from_user(user), reason=reason)
    if record is None:
        raise Conflict(f"{agent.slug} is {agent.status}: only an active or suspended agent can be quarantined.")
    return record


def agent_saved(sender: Any, instance: Agent, created: bool = False, **kwargs: Any) -> None:
    """post_save of an agent: keep quarantine records true to the status, however it was changed.

    Entering quarantine through the registry (a person, the API) opens a record; leaving it
    closes the open one, with who released it and why. Runs in the status change's transaction.
    """
    if created:
        return
    open_quarantine = Quarantine.objects.filter(agent_id=instance.pk, released_at__isnull=True).first()
    if instance.status == AgentStatus.QUARANTINED:
        if open_quarantine is None:
            actor, reason = _last_status_change(instance)
            quarantine(agent_id=str(instance.pk), actor=actor, reason=reason or "Quarantined in the registry.")
        return
    if open_quarantine is None:
        return
    now = timezone.now()
    actor, reason = _last_status_change(instance)
    open_quarantine.released_at = now
    if actor.kind == "user":
        open_quarantine.released_by_id = int(actor.id) if actor.id.isdigit() else None
    open_quarantine.released_by_label = actor.label
    open_quarantine.release_reason = reason or f"Status changed to {instance.status} in the registry."
    open_quarantine.save(update_fields=["released_at", "released_by", "released_by_label", "release_reason"])
    audit.append(
        actor=actor,
        action="guardian.released",
        subject_type="agent",
        subject_id=str(instance.pk),
        agent_id=str(instance.pk),
        at=now,
        payload={
            "quarantine": open_quarantine.pk,
            "agent": str(instance.pk),
            "status": instance.status,
            "reason": open_quarantine.release_reason,
            "quarantined_for_seconds": round((now - open_quarantine.started_at).total_seconds(), 3),
        },
    )


def _last_status_change(agent: Agent) -> tuple[Actor, str]:
    change = (
        ChangeRecord.objects.filter(agent_id=agent.pk, action="agent.status_changed").order_by("-at", "-id").first()
    )
    if change is None:
        return Actor(kind="system", id="registry", label="registry (unattributed)"), ""
    return Actor(kind=change.actor_kind, id=change.actor_id, label=change.actor_label), change.reason  # type: ignore[arg-type]


# Reviews the guardians asked for ---------------------------------------------------------------


def review_settled(approval: Approval, actor: Actor) -> None:
    """A human settled a review: a rejection confirms the guardians' concern and quarantines the agent."""
    if approval.state != ApprovalState.REJECTED:
        return  # approved: the concern is cleared; expired or cancelled: the flags stand as they are
    quarantine(
        agent_id=str(approval.agent_id),
        actor=actor,
        reason=f"Review confirmed the guardians' concern: {approval.comment}"[:1000],
        tool_call=ToolCall.objects.filter(pk=approval.tool_call_id).first(),
    )


# Baselines ------------------------------------------------------------------------------------


def fold(agent_id: str, *, until: dt.datetime, include_until: bool) -> AgentProfile:
    """Fold the agent's calls up to `until` into its baseline and known destinations, once each.

    Incremental: `observed_until` is how far it got, so each call is read once however many
    results are scored. Denied and escalated calls count too (the deny rate is part of
    normal behaviour). Bounded work per step.
    """
    with transaction.atomic():
        profile, _ = AgentProfile.objects.get_or_create(agent_id=agent_id, defaults={"baseline": {}})
        profile = AgentProfile.objects.select_for_update().get(pk=profile.pk)
        calls = ToolCall.objects.filter(agent_id=agent_id).only("id", "tool", "arguments", "decision", "created_at")
        calls = calls.filter(created_at__lte=until) if include_until else calls.filter(created_at__lt=until)
        if profile.observed_until is not None:
            calls = calls.filter(created_at__gt=profile.observed_until)
        batch = list(calls.order_by("created_at", "id")[:FOLD_BATCH])
        if not batch:
            return profile
        baseline = profile.baseline or behaviour_scorer.empty()
        known = list(profile.destinations or [])
        for call in batch:
            baseline = behaviour_scorer.observe(baseline, _observation(call))
            if call.decision == DecisionOutcome.ALLOW:
                known = subjects.remember(known, subjects.destinations(call.arguments))
        profile.baseline = baseline
        profile.destinations = known
        profile.observations += len(batch)
        profile.observed_until = batch[-1].created_at
        profile.save(update_fields=["baseline", "destinations", "observations", "observed_until", "updated_at"])
    return profile


def _observation(call: ToolCall) -> Any:
    return behaviour_scorer.observation_of(
        tool=call.tool, arguments=call.arguments, decision=call.decision, at=call.created_at
    )


def _history(profile: AgentProfile | None) -> History | None:
    """What the agent did before; None while nothing was observed (no history is not an empty one)."""
    if profile is None or not profile.observations:
        return None
    return History(destinations=frozenset(profile.destinations or ()), baseline=profile.baseline or None)


def profile_history(agent_id: str) -> History | None:
    """The agent's history as the pre-check reads it: one indexed query, no folding on the decision path."""
    return _history(AgentProfile.objects.filter(agent_id=agent_id).first())


# Configuration --------------------------------------------------------------------------------


@transaction.atomic
def record_configuration(guardian: Guardian, *, actor: Actor, created: bool) -> None:
    """Audit a guardian's configuration after a change, and make every process re-read the guardians."""
    revisions.bump(revisions.POLICY)
    audit.append(
        actor=actor,
        action="guardian.created" if created else "guardian.changed",
        subject_type="guardian",
        subject_id=str(guardian.pk),
        agent_id=str(guardian.agent_id),
        payload=guardian.as_config(),
    )


# Hooks into the decision path and the API -------------------------------------------------------


def queue_scoring(call: ToolCall) -> None:
    """Inside the transaction that records a result: queue the guardians' scoring once it commits."""
    if not guardians_for(str(call.agent_id), call.tool):
        return
    call_id = str(call.pk)
    transaction.on_commit(lambda: _send_scoring(call_id))


def _send_scoring(call_id: str) -> None:
    from guardian import tasks

    try:
        tasks.score_result.delay(call_id)
    except Exception:
        logger.warning("Could not queue guardian scoring of %s; guardian.catch_up will.", call_id, exc_info=True)


def call_detail(call: ToolCall) -> dict[str, Any]:
    """The `guardian` member of a tool call's API document: each assessment with its scores."""
    assessments = getattr(call, "_guardian_assessments", None)
    if assessments is None:
        assessments = getattr(call, "_prefetched_objects_cache", {}).get("assessments")
    if assessments is None:
        tool = snapshots.current().snapshot.tools.get(call.tool)
        if call.result_reported_at is None and (tool is None or not tool.precheck):
            return {}  # nothing can have judged it yet: no query on the decision path
        assessments = list(
            Assessment.objects.filter(tool_call_id=call.pk).select_related("guardian__agent").prefetch_related("scores")
        )
    if not assessments:
        return {}
    return {
        "guardian": [
            {
                "guardian": assessment.guardian.agent.slug,
                "stage": assessment.stage,
                "subject": assessment.subject,
                "value": round(assessment.value, 4),
                "action": assessment.action,
                "disagreement": assessment.disagreement,
                "reasons": assessment.reasons,
                "scores": {score.scorer: round(score.value, 4) for score in assessment.scores.all()},
                "at": assessment.created_at.isoformat().replace("+00:00", "Z"),
            }
            for assessment in assessments
        ]
    }
