"""The guardians' pre-check on the decision path, for tools marked for pre-checks.

Registered with `policy.hooks.pre_decision`. The watched agent's context comes from the policy
snapshot and one indexed read of its profile; the fast scorers then run in a worker thread
with what is left of the time budget (`WARDEN_GUARDIAN_PRECHECK_BUDGET_MS`). Running out of
time, or any error, escalates the call: a pre-check never allows on its own.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from core.conf import warden_settings
from guardian import services, subjects
from guardian.choices import Action
from policy.engine import Code, Reason
from policy.hooks import PreCheck, PreCheckOutcome

logger = logging.getLogger(__name__)

_executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="guardian-precheck")


def check(pre: PreCheck) -> PreCheckOutcome | None:
    guardians = services.guardians_for(pre.agent_id, pre.tool, precheck=True)
    if not guardians:
        return None
    # A process's first pre-check builds its scorers (compiles patterns, loads weights) outside the
    # budget: the budget is for judging a call, not for starting up.
    services.prepare_scorers(guardians)
    started = time.perf_counter()
    budget = warden_settings.GUARDIAN_PRECHECK_BUDGET_MS / 1000.0
    subject = subjects.call_subject(
        agent=subjects.agent_context(pre.snapshot, pre.agent_id),
        tool=pre.tool,
        arguments=pre.arguments,
        context=pre.context,
        history=services.profile_history(pre.agent_id),
        at_hour=pre.now.hour,
        decision=str(pre.decision.outcome),
        call_id=pre.call_id,
    )
    remaining = budget - (time.perf_counter() - started)
    if remaining <= 0:
        return _out_of_time(budget, started)  # the budget went on gathering the context
    future = _executor.submit(lambda: [services.judge(guardian, subject, fast_only=True) for guardian in guardians])
    try:
        judgements = [judgement for judgement in future.result(timeout=remaining) if judgement.scores]
    except FutureTimeout:
        future.cancel()  # if it already runs, it finishes in the background and its verdict is dropped
        return _out_of_time(budget, started)
    except Exception:
        logger.exception("Guardian pre-check failed; escalating (tool=%s)", pre.tool)
        return PreCheckOutcome(
            reasons=[Reason(Code.GUARDIAN_TIMEOUT, "The guardians' pre-check failed; a human must approve.")]
        )
    reasons: list[Reason] = []
    for judgement in judgements:
        slug = judgement.guardian.agent.slug
        detail = {"guardian": slug, "value": round(judgement.value, 4)}
        top = f": {judgement.reasons[0]['message']}" if judgement.reasons else ""
        if judgement.action == Action.QUARANTINE:
            reasons.append(
                Reason(
                    Code.GUARDIAN_DENIED,
                    f"Guardian {slug} scored the call {judgement.value:.2f}, above its quarantine threshold{top}. "
                    "The agent is quarantined.",
                    detail=detail,
                )
            )
        elif judgement.action == Action.ESCALATE:
            reasons.append(
                Reason(
                    Code.GUARDIAN_ESCALATED,
                    f"Guardian {slug} scored the call {judgement.value:.2f}, above its escalation threshold{top}.",
                    detail=detail,
                )
            )
    pairs = services.disagreements(judgements)
    disagreeing = frozenset(judgement.guardian.pk for pair in pairs for judgement in pair)
    for first, second in pairs:
        reasons.append(
            Reason(
                Code.GUARDIAN_DISAGREEMENT,
                f"Guardians {first.guardian.agent.slug} ({first.value:.2f}) and {second.guardian.agent.slug} "
                f"({second.value:.2f}) disagree about the call.",
                detail={"guardians": [first.guardian.agent.slug, second.guardian.agent.slug]},
            )
        )
    return PreCheckOutcome(
        reasons=reasons,
        record=lambda call: services.record_precheck(judgements, call, disagreeing=disagreeing),
        detail={"guardians": len(judgements), "ms": round((time.perf_counter() - started) * 1000, 3)},
    )


def _out_of_time(budget: float, started: float) -> PreCheckOutcome:
    spent = (time.perf_counter() - started) * 1000
    return PreCheckOutcome(
        reasons=[
            Reason(
                Code.GUARDIAN_TIMEOUT,
                f"The guardians' pre-check took longer than its {budget * 1000:g} ms budget; a human must approve.",
                detail={"budget_ms": round(budget * 1000, 3), "spent_ms": round(spent, 3)},
            )
        ]
    )
