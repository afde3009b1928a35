"""`decide(snapshot, request) -> Decision`: the zero-trust decision, pure and deterministic.

Order (see shared/DESIGN.md): agent status -> delegation chain -> grant -> contract and JSON
Schema validation -> grant constraints -> rules -> rate limits, budgets and loop guard. The
gates up to validation stop at the first failure (nothing after them can be trusted); past
validation every check runs so the record is complete, and the most restrictive outcome wins:
deny over escalate over allow. Default deny: any error inside the engine denies.

The engine does no I/O: the caller counts calls (and looks up reported cost) before deciding
and passes the counts in `Request.counters`, so the same snapshot and request always give the
same decision and a recorded decision can be replayed.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from policy.engine.reasons import SEVERITY, Code, Outcome, Reason
from policy.engine.rules import CompiledRule, Effect, Mode, RuleEvaluationError, activation, evaluate
from policy.engine.snapshot import ACTIVE, QUARANTINED, AgentView, ContractView, GrantView, Snapshot

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallContext:
    """What the agent says about the call: its session, on whose behalf, and why."""

    session_id: str = ""
    on_behalf_of: tuple[str, ...] = ()  # principal first, immediate delegator last (ids or slugs)
    purpose: str = ""

    def as_cel(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "on_behalf_of": list(self.on_behalf_of), "purpose": self.purpose}


@dataclass(frozen=True, slots=True)
class Counters:
    """Usage counted by the caller, this call included, keyed by agent id.

    Calls made on another agent's behalf count against that agent too, so a chain can never
    spend more of a member's limits than the member itself could.
    """

    tool_calls_last_minute: Mapping[str, int] = field(default_factory=dict)  # calls of this tool
    calls_last_hour: Mapping[str, int] = field(default_factory=dict)  # calls of any tool
    cost_today: Mapping[str, Decimal] = field(default_factory=dict)  # reported cost since midnight UTC
    repeats_in_window: int = 0  # this agent, this tool, these canonical arguments


@dataclass(frozen=True, slots=True)
class Request:
    agent_id: str
    tool: str
    arguments: Any
    now: dt.datetime
    contract_version: int | None = None
    context: CallContext = CallContext()
    counters: Counters = Counters()


@dataclass(frozen=True, slots=True)
class ShadowResult:
    """What a shadow rule would have done; recorded, never applied."""

    rule: str
    name: str
    effect: str
    matched: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"rule": self.rule, "name": self.name, "effect": self.effect, "matched": self.matched}
        if self.error is not None:
            data["error"] = self.error
        return data


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reasons: tuple[Reason, ...]
    shadow: tuple[ShadowResult, ...]
    policy_version: int
    contract_version: int | None
    rules_matched: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.outcome is Outcome.ALLOW

    def codes(self) -> list[str]:
        return [str(reason.code) for reason in self.reasons]


def decide(snapshot: Snapshot, request: Request) -> Decision:
    """Decide one tool call. Never raises: an internal error is a deny with `internal_error`."""
    try:
        return _Decider(snapshot, request).run()
    except Exception:
        logger.exception("Policy engine error; denying (tool=%s)", request.tool)
        return Decision(
            outcome=Outcome.DENY,
            reasons=(Reason(Code.INTERNAL_ERROR, "Warden could not evaluate this call; it is denied."),),
            shadow=(),
            policy_version=getattr(snapshot, "version", 0),
            contract_version=None,
        )


class _Decider:
    __slots__ = ("contract_version", "request", "snapshot")

    def __init__(self, snapshot: Snapshot, request: Request) -> None:
        self.snapshot = snapshot
        self.request = request
        self.contract_version: int | None = None

    def _stop(self, *reasons: Reason) -> Decision:
        return Decision(Outcome.DENY, reasons, (), self.snapshot.version, self.contract_version)

    def run(self) -> Decision:
        snapshot, request = self.snapshot, self.request
        if snapshot.is_empty:
            return self._stop(Reason(Code.EMPTY_SNAPSHOT, "No policy is loaded; every call is denied."))

        # 1. The caller exists and is active.
        agent = snapshot.agents.get(request.agent_id)
        if agent is None:
            return self._stop(Reason(Code.UNKNOWN_AGENT, "The calling agent is not registered."))
        if agent.status != ACTIVE:
            return self._stop(_not_active(agent, "The agent"))

        # 2. The delegation chain, if any: every member active (or quarantined: contained, below),
        # within its depth, no cycles.
        chain, failure = self._chain(agent)
        if failure is not None:
            return self._stop(failure)

        # 3. The tool and the caller's grant for it; every member of the chain must hold one too.
        tool = snapshot.tools.get(request.tool)
        if tool is None:
            return self._stop(
                Reason(
                    Code.UNKNOWN_TOOL, f"No registered tool is named {request.tool!r}.", detail={"tool": request.tool}
                )
            )
        grant = snapshot.current_grant(agent.id, tool.name, request.now)
        if grant is None:
            return self._stop(
                Reason(
                    Code.NO_GRANT, f"{agent.slug} holds no current grant for {tool.name}.", detail={"tool": tool.name}
                )
            )
        grants: list[tuple[AgentView, GrantView]] = [(agent, grant)]
        for member in chain:
            member_grant = snapshot.current_grant(member.id, tool.name, request.now)
            if member_grant is None:
                return self._stop(
                    Reason(
                        Code.DELEGATION_DENIED,
                        f"{member.slug}, on whose behalf the call is made, holds no grant for {tool.name}; "
                        "a delegate never has more authority than its delegator.",
                        detail={"agent": member.slug, "tool": tool.name},
                    )
                )
            grants.append((member, member_grant))

        # 4. The contract, and the arguments against its input schema.
        contract, failure = self._contract(tool.name)
        if failure is not None:
            return self._stop(failure)
        assert contract is not None
        self.contract_version = contract.version
        if not contract.input.is_valid(request.arguments):
            return self._stop(
                *(
                    Reason(
                        Code.SCHEMA_VIOLATION, error.message, pointer=error.pointer, detail={"keyword": error.keyword}
                    )
                    for error in contract.input.report(request.arguments)
                )
            )

        # Past validation: collect every reason, the most restrictive outcome wins.
        # 5a. Containment: a quarantined delegator or supervisor sends the call to a human.
        reasons: list[Reason] = self._containment([agent, *chain])
        # 5. Grant constraints, of the caller and of every delegator (the intersection).
        for holder, held in grants:
            reasons.extend(_constraint_reasons(holder, held, request.arguments))
        # 6. Rules: the caller's, and every delegator's as if it made the call itself.
        shadow, matched = self._rules([agent, *chain], tool.as_cel, reasons)
        # 7. Rate limits, budgets, loop guard.
        reasons.extend(self._limits(grants))

        outcome = Outcome.ALLOW
        for reason in reasons:
            if SEVERITY[reason.outcome] > SEVERITY[outcome]:
                outcome = reason.outcome
        return Decision(outcome, tuple(reasons), shadow, snapshot.version, contract.version, matched)

    # -- steps ---------------------------------------------------------------------------

    def _chain(self, agent: AgentView) -> tuple[list[AgentView], Reason | None]:
        names = self.request.context.on_behalf_of
        if not names:
            return [], None
        members: list[AgentView] = []
        seen = {agent.id}
        for index, name in enumerate(names):
            member = self.snapshot.agent(name)
            if member is None:
                return [], _delegation(f"{name!r} in on_behalf_of is not a registered agent.", agent=name)
            if member.id in seen:
                return [], _delegation(f"{member.slug} appears twice in the delegation chain (a cycle).", agent=name)
            seen.add(member.id)
            if member.status != ACTIVE and member.status != QUARANTINED:
                reason = _not_active(member, f"{member.slug}, on whose behalf the call is made,")
                return [], _delegation(reason.message, agent=member.slug, status=member.status)
            depth = len(names) - index  # hops from this member down to the caller
            if depth > member.max_delegation_depth:
                return [], _delegation(
                    f"{member.slug} may delegate {member.max_delegation_depth} level(s) deep; "
                    f"this call is {depth} level(s) below it.",
                    agent=member.slug,
                    depth=depth,
                    max_delegation_depth=member.max_delegation_depth,
                )
            members.append(member)
        return members, None

    def _containment(self, holders: list[AgentView]) -> list[Reason]:
        """Quarantine cascades: calls on a quarantined agent's behalf, or by an agent it supervises, escalate.

        The quarantined agent's own calls never get here (the status gate denies them). Each
        holder's supervisors are walked up to the top (cycles are refused by the registry, and
        cut here too).
        """
        reasons: list[Reason] = []
        named: set[str] = set()
        for index, holder in enumerate(holders):
            if index > 0 and holder.status == QUARANTINED and holder.id not in named:
                named.add(holder.id)
                reasons.append(_contained(holder, f"{holder.slug}, on whose behalf the call is made, is quarantined"))
            seen: set[str] = {holder.id}
            through: list[str] = []
            supervisor_id = holder.supervisor_id
            while supervisor_id is not None and supervisor_id not in seen:
                seen.add(supervisor_id)
                supervisor = self.snapshot.agents.get(supervisor_id)
                if supervisor is None:
                    break
                if supervisor.status == QUARANTINED and supervisor.id not in named:
                    named.add(supervisor.id)
                    via = f" (through {', '.join(through)})" if through else ""
                    reasons.append(
                        _contained(
                            supervisor, f"{supervisor.slug}, which supervises {holder.slug}{via}, is quarantined"
                        )
                    )
                through.append(supervisor.slug)
                supervisor_id = supervisor.supervisor_id
        return reasons

    def _contract(self, tool: str) -> tuple[ContractView | None, Reason | None]:
        versions = self.snapshot.contracts.get(tool, {})
        requested = self.request.contract_version
        if requested is None:
            default = self.snapshot.default_contracts.get(tool)
            if default is None:
                return None, Reason(
                    Code.NO_ACTIVE_CONTRACT, f"{tool} has no active contract version.", detail={"tool": tool}
                )
            return versions[default], None
        contract = versions.get(requested)
        if contract is None or contract.status not in {"active", "deprecated"}:
            return None, Reason(
                Code.UNKNOWN_CONTRACT_VERSION,
                f"{tool} has no active or deprecated contract version {requested}.",
                detail={"tool": tool, "contract_version": requested},
            )
        return contract, None

    def _rules(
        self, holders: list[AgentView], tool_cel: Any, reasons: list[Reason]
    ) -> tuple[tuple[ShadowResult, ...], tuple[str, ...]]:
        """Evaluate the rules in scope for each holder of the authority (caller first, then the chain).

        For each holder, the first matching enforced rule decides (allow stops that holder's rules);
        `agent` is that holder, so a chain is never held to fewer rules than any member alone.
        """
        request = self.request
        shadow: dict[str, ShadowResult] = {}
        matched: list[str] = []
        for holder in holders:
            applicable = [
                rule
                for rule in self.snapshot.rules
                if rule.applies_to(agent_id=holder.id, role=holder.role, tool=request.tool)
            ]
            if not applicable:
                continue
            env = activation(_cel_values(applicable, holder, tool_cel, request))
            on_behalf = "" if holder is holders[0] else f" (applied to {holder.slug}, on whose behalf the call is made)"
            enforcing = True  # until an enforce rule matches: first match decides
            for rule in applicable:
                if rule.mode is Mode.SHADOW:
                    result = _shadow(rule, env)
                    if rule.id not in shadow or (result.matched and not shadow[rule.id].matched):
                        shadow[rule.id] = result
                    continue
                if not enforcing:
                    continue
                try:
                    hit = evaluate(rule, env)
                except RuleEvaluationError as error:
                    reasons.append(
                        Reason(
                            Code.RULE_ERROR,
                            f"Rule {rule.name!r} failed: {error}; denied (fail closed){on_behalf}.",
                            rule=rule.id,
                        )
                    )
                    enforcing = False
                    continue
                if not hit:
                    continue
                enforcing = False
                if rule.id in matched:  # a rule in scope for several holders speaks once
                    continue
                matched.append(rule.id)
                if rule.effect is Effect.DENY:
                    message = rule.message or f"Denied by rule {rule.name!r}."
                    reasons.append(Reason(Code.RULE_DENIED, message + on_behalf, rule=rule.id))
                elif rule.effect is Effect.ESCALATE:
                    message = rule.message or f"Rule {rule.name!r} requires approval."
                    reasons.append(Reason(Code.RULE_ESCALATED, message + on_behalf, rule=rule.id))
        return tuple(shadow.values()), tuple(matched)

    def _limits(self, grants: list[tuple[AgentView, GrantView]]) -> list[Reason]:
        counters, limits = self.request.counters, self.snapshot.limits
        reasons: list[Reason] = []
        for holder, held in grants:
            per_minute = counters.tool_calls_last_minute.get(holder.id, 0)
            if held.rate_limit_per_minute is not None and per_minute > held.rate_limit_per_minute:
                reasons.append(
                    Reason(
                        Code.RATE_LIMITED,
                        f"{holder.slug}'s grant allows {held.rate_limit_per_minute} call(s) of {held.tool} per minute.",
                        detail={"agent": holder.slug, "limit": held.rate_limit_per_minute, "window_seconds": 60},
                    )
                )
            per_hour = counters.calls_last_hour.get(holder.id, 0)
            if holder.max_calls_per_hour is not None and per_hour > holder.max_calls_per_hour:
                reasons.append(
                    Reason(
                        Code.RATE_LIMITED,
                        f"{holder.slug} may make {holder.max_calls_per_hour} tool call(s) per hour.",
                        detail={"agent": holder.slug, "limit": holder.max_calls_per_hour, "window_seconds": 3600},
                    )
                )
            spent = counters.cost_today.get(holder.id, Decimal(0))
            if holder.max_cost_per_day is not None and spent >= holder.max_cost_per_day:
                reasons.append(
                    Reason(
                        Code.BUDGET_EXCEEDED,
                        f"{holder.slug} has spent {spent} of its {holder.max_cost_per_day} daily budget.",
                        detail={"agent": holder.slug, "spent": str(spent), "budget": str(holder.max_cost_per_day)},
                    )
                )
        if counters.repeats_in_window > limits.loop_max_repeats:
            reasons.append(
                Reason(
                    Code.LOOP_DETECTED,
                    f"The same call was made {counters.repeats_in_window} times in {limits.loop_window_seconds} s "
                    f"(at most {limits.loop_max_repeats}).",
                    detail={"repeats": counters.repeats_in_window, "window_seconds": limits.loop_window_seconds},
                )
            )
        return reasons


# -- helpers ------------------------------------------------------------------------------


def _not_active(agent: AgentView, who: str) -> Reason:
    return Reason(
        Code.AGENT_NOT_ACTIVE,
        f"{who} is {agent.status}; only active agents may act.",
        detail={"agent": agent.slug, "status": agent.status},
    )


def _contained(quarantined: AgentView, why: str) -> Reason:
    return Reason(
        Code.QUARANTINE_CONTAINMENT,
        f"{why}; a human must approve.",
        detail={"quarantined_agent": quarantined.slug},
    )


def _delegation(message: str, **detail: Any) -> Reason:
    return Reason(Code.DELEGATION_DENIED, message, detail=detail)


def _constraint_reasons(holder: AgentView, grant: GrantView, arguments: Any) -> list[Reason]:
    reasons = []
    for constraint in grant.constraints:
        found, value = _resolve(arguments, constraint.pointer)
        if found and not constraint.schema.is_valid(value):
            errors = constraint.schema.report(value)
            why = errors[0].message if errors else "outside the grant's limits"
            reasons.append(
                Reason(
                    Code.LIMIT_EXCEEDED,
                    f"{constraint.pointer}: {why} (grant of {grant.tool} to {holder.slug}).",
                    pointer=constraint.pointer,
                    detail={"agent": holder.slug, "grant": grant.id, "limit": dict(constraint.keywords)},
                )
            )
    return reasons


def _resolve(document: Any, pointer: str) -> tuple[bool, Any]:
    """The value at a JSON Pointer, or (False, None) when the document has nothing there."""
    value = document
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return False, None
    return True, value


def _cel_values(rules: list[CompiledRule], agent: AgentView, tool_cel: Any, request: Request) -> dict[str, Any]:
    """The variables the rules read, each map cut down to the fields they select (see rules.field_needs)."""
    needed: dict[str, set[str] | None] = {}
    for rule in rules:
        for name in rule.variables:
            fields = rule.fields.get(name)
            if name not in needed:
                needed[name] = set(fields) if fields is not None else None
            elif needed[name] is not None:
                if fields is None:
                    needed[name] = None
                else:
                    needed[name] |= fields  # type: ignore[operator]  # checked not None above
    values: dict[str, Any] = {}
    for name, wanted in needed.items():
        if name == "now":
            values["now"] = request.now
            continue
        if name == "args":
            value: Any = request.arguments
        elif name == "agent":
            value = agent.as_cel()
        elif name == "tool":
            value = tool_cel()
        else:
            value = request.context.as_cel()
        if wanted is not None and isinstance(value, dict):
            value = {key: value[key] for key in wanted if key in value}
        values[name] = value
    return values


def _shadow(rule: CompiledRule, env: Any) -> ShadowResult:
    try:
        return ShadowResult(rule.id, rule.name, str(rule.effect), evaluate(rule, env))
    except RuleEvaluationError as error:
        return ShadowResult(rule.id, rule.name, str(rule.effect), False, str(error))
