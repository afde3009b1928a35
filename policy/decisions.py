"""The decision path: authenticate the agent, count, decide, sign, and record the call.

Reads nothing from the database on the way to a decision except what it must: the policy
snapshot and the agent keys are cached per process (see `policy.snapshots`), counters live in
Redis or in memory, and the only write is the tool call row. An idempotency key costs one
indexed read; a daily budget one aggregate over the agent's reported results today.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import jsonschema_rs
import rfc8785
from django.db import IntegrityError, connections, models, router, transaction
from django.db.models import Sum
from django.utils import timezone
from opentelemetry.util.types import AttributeValue

import audit.services as audit
from audit import sensitive
from audit.models import AuditRecord
from core import tracing
from core.actors import Actor
from core.conf import warden_settings
from core.errors import AuthenticationFailed, Conflict, InvalidInput
from policy import counters, hooks, metrics, snapshots, tokens, waiting
from policy.engine import CallContext, ContractView, Decision, Outcome, Request, decide
from policy.engine.reasons import SEVERITY, Code, Reason
from policy.engine.validation import CompiledSchema
from policy.models import ToolCall
from policy.snapshots import KeyView, PolicyState
from registry import services as registry_services
from registry.keys import key_matches, parse_prefix
from registry.models import Credential

_last_used_written: dict[str, float] = {}
TRACER_SCOPE = "warden.policy"  # the instrumentation scope of decision spans

_NAME = {"type": "string", "minLength": 1, "maxLength": 128}
TOOL_CALL_REQUEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Tool call request",
    "type": "object",
    "additionalProperties": False,
    "required": ["tool"],
    "properties": {
        "tool": _NAME,
        "arguments": {"type": "object", "maxProperties": 256},
        "contract_version": {"type": ["integer", "null"], "minimum": 1},
        "context": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "session_id": {"type": "string", "maxLength": 128},
                "on_behalf_of": {"type": "array", "items": _NAME, "maxItems": 8},
                "purpose": {"type": "string", "maxLength": 1000},
            },
        },
        "idempotency_key": {"type": ["string", "null"], "minLength": 1, "maxLength": 128},
    },
}
_REQUEST = CompiledSchema(TOOL_CALL_REQUEST_SCHEMA)

_USAGE = {"type": "integer", "minimum": 0, "maximum": 10**12}
RESULT_REQUEST_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Tool call result",
    "type": "object",
    "additionalProperties": False,
    "required": ["status"],
    "properties": {
        "status": {"enum": ["succeeded", "failed"]},
        "output": True,
        "usage": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "input_tokens": _USAGE,
                "output_tokens": _USAGE,
                "cost": {"type": "number", "minimum": 0, "maximum": 10**8},
            },
        },
    },
}
_RESULT = CompiledSchema(RESULT_REQUEST_SCHEMA)


def check_body(schema: CompiledSchema, body: Any) -> None:
    """Refuse a request body that breaks its schema, naming every failing field by JSON Pointer."""
    if not schema.is_valid(body):
        errors = schema.report(body)
        raise InvalidInput(
            "The request body is not valid; see detail for each field.",
            detail={(error.pointer or "/"): [error.message] for error in errors},
        )


# Authentication ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentPrincipal:
    """An authenticated agent, as DRF's request.user."""

    agent_id: str
    prefix: str
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_agent: bool = True

    def has_perms(self, perms: Any) -> bool:
        return False

    def has_perm(self, perm: Any) -> bool:
        return False


def authenticate_key(key: str) -> AgentPrincipal:
    """The agent behind a presented key, from the cached snapshot; 401 saying why otherwise."""
    prefix = parse_prefix(key)
    state = snapshots.current()
    found: KeyView | None = state.keys.get(prefix) if prefix else None
    now = timezone.now()
    if found is None or not key_matches(key, found.secret_hash) or (found.expires_at and found.expires_at <= now):
        # Not a live key: let the registry say exactly why (malformed, unknown, expired, revoked).
        registry_services.credential_authenticate(key)
        raise AuthenticationFailed("Unknown key.", detail={"reason": "unknown"})
    _touch(found.prefix)
    return AgentPrincipal(agent_id=found.agent_id, prefix=found.prefix)


def _touch(prefix: str) -> None:
    """Keep `last_used_at` as current as the registry does: at most one UPDATE per key per resolution per process."""
    now, resolution = time.monotonic(), registry_services.LAST_USED_RESOLUTION.total_seconds()
    if now - _last_used_written.get(prefix, -resolution) >= resolution:
        _last_used_written[prefix] = now
        Credential.objects.filter(prefix=prefix).update(last_used_at=timezone.now())


# Deciding ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallRequest:
    tool: str
    arguments: dict[str, Any]
    contract_version: int | None = None
    context: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None

    @classmethod
    def from_body(cls, body: Any) -> CallRequest:
        check_body(_REQUEST, body)
        return cls(
            tool=body["tool"],
            arguments=body.get("arguments") or {},
            contract_version=body.get("contract_version"),
            context=body.get("context") or {},
            idempotency_key=body.get("idempotency_key"),
        )


def decide_call(
    principal: AgentPrincipal, call: CallRequest, *, started: float | None = None, audited: bool = True
) -> ToolCall:
    """Decide one tool call and record it with its audit record; a repeated idempotency key returns the first decision.

    Each decision is an `execute_tool {tool}` span (GenAI semantic conventions) under the span
    of the request, which carries the agent's `traceparent`: Warden's decision joins the
    agent's own trace. `audited=False` exists for benchmarks/audit.py alone, which measures
    what the audit record costs.
    """
    with tracing.start_span(
        TRACER_SCOPE,
        f"{tracing.EXECUTE_TOOL} {call.tool}",
        {tracing.OPERATION_NAME: tracing.EXECUTE_TOOL, tracing.TOOL_NAME: call.tool},
    ) as span:
        record, replayed = _decide_and_record(principal, call, started=started, audited=audited)
        if span.is_recording():
            span.set_attributes(_span_attributes(principal, record, replayed=replayed))
            if any(reason.get("code") == Code.INTERNAL_ERROR for reason in record.reasons):
                tracing.mark_error(span, str(Code.INTERNAL_ERROR), "The policy engine failed; the call was denied.")
        return record


def _decide_and_record(
    principal: AgentPrincipal, call: CallRequest, *, started: float | None, audited: bool
) -> tuple[ToolCall, bool]:
    """Decide and record one call: the record, and whether it replays an earlier decision (same idempotency key).

    Replays are reported so the span can say so; the record alone does not tell. The decision is
    counted in the metrics once it is stored (`policy.metrics`); a replay is not counted again.
    """
    started = time.perf_counter() if started is None else started
    try:
        digest = tokens.arguments_digest(call.arguments)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as error:
        raise InvalidInput(
            "The arguments cannot be canonicalised (RFC 8785): integers must lie within ±2^53 and "
            "numbers must be finite.",
            detail={"/arguments": [str(error)]},
        ) from None
    if call.idempotency_key is not None:
        existing = _replay(principal, call, digest)
        if existing is not None:
            return existing, True
    state = snapshots.current()
    now = timezone.now()
    decision = _decide(state, principal, call, digest, now)
    call_id = uuid.uuid4()
    recorders: list[Callable[[ToolCall], None]] = []
    tool = state.snapshot.tools.get(call.tool)
    if tool is not None and tool.precheck and decision.outcome is not Outcome.DENY and hooks.has_pre_decision_checks():
        decision, recorders = _pre_check(state, principal, call, decision, str(call_id), now)
    token, expires = None, None
    if decision.outcome is Outcome.ALLOW:
        token, expires = tokens.issue(
            agent_id=principal.agent_id,
            tool=call.tool,
            digest=digest,
            call_id=str(call_id),
            policy_version=decision.policy_version,
            now=now,
        )
    contract = state.snapshot.contracts.get(call.tool, {}).get(decision.contract_version or 0)
    stored_arguments = sensitive.mask(call.arguments, contract.sensitive_input if contract else ())
    record = ToolCall(
        id=call_id,
        agent_id=principal.agent_id,
        credential_prefix=principal.prefix,
        tool=call.tool,
        arguments=stored_arguments,
        arguments_digest=digest,
        context=call.context,
        idempotency_key=call.idempotency_key,
        decision=str(decision.outcome),
        escalated=decision.outcome is Outcome.ESCALATE,
        reasons=sensitive.redact_messages(
            [reason.as_dict() for reason in decision.reasons], contract.sensitive_input if contract else ()
        ),
        shadow=[result.as_dict() for result in decision.shadow],
        contract_version=decision.contract_version,
        policy_version=decision.policy_version,
        token_expires_at=expires,
        latency_us=0,
    )
    record.created_at = record.updated_at = now
    record.latency_us = int((time.perf_counter() - started) * 1_000_000)
    audit_row = _decided_record(state, record) if audited else None
    try:
        if call.idempotency_key is None and not record.escalated and not recorders:
            _insert(record, audit_row)  # atomic on its own: one statement on PostgreSQL
        else:
            # A savepoint inside an outer transaction: the idempotency race below is survivable.
            # A pre-check's scores and an escalated call's approval commit with the call (see policy.hooks).
            with transaction.atomic():
                _insert(record, audit_row)
                for recorder in recorders:
                    recorder(record)
                if record.escalated:
                    hooks.escalated(record, decision)
    except IntegrityError:
        if call.idempotency_key is None:
            raise
        # The same key raced in from another request: answer with the decision that won.
        existing = _replay(principal, call, digest)
        if existing is None:
            raise
        return existing, True
    metrics.record_decision(
        decision=record.decision,
        tool=metrics.tool_label(call.tool, state.snapshot),
        codes=(reason.code for reason in decision.reasons),
        seconds=time.perf_counter() - started,
    )
    record.decision_token = token  # type: ignore[attr-defined]  # returned once, never stored
    record.prechecked = bool(recorders)  # type: ignore[attr-defined]  # the response describes the pre-check
    return record, False


def _span_attributes(principal: AgentPrincipal, record: ToolCall, *, replayed: bool) -> dict[str, AttributeValue]:
    """What the decision span says: who asked, what was decided and why, under which policy.

    Arguments only with WARDEN_TRACE_ARGUMENTS, and then as stored with the sensitive fields
    left out entirely (not even their digests). An escalation's approval id is added by the
    approval queue's hook, which runs inside this span.
    """
    attributes: dict[str, AttributeValue] = {
        tracing.TOOL_CALL_ID: str(record.pk),
        tracing.AGENT_ID: principal.agent_id,
        tracing.DECISION: record.decision,
        tracing.REASON_CODES: [str(reason.get("code", "")) for reason in record.reasons],
        tracing.POLICY_VERSION: record.policy_version,
    }
    agent = snapshots.current().snapshot.agents.get(principal.agent_id)
    if agent is not None:
        attributes[tracing.AGENT_NAME] = agent.name
        attributes[tracing.AGENT_SLUG] = agent.slug
    if record.contract_version is not None:
        attributes[tracing.CONTRACT_VERSION] = record.contract_version
    if replayed:
        attributes[tracing.IDEMPOTENT_REPLAY] = True
    if warden_settings.TRACE_ARGUMENTS:
        shown = sensitive.omit(record.arguments)
        if shown is not None:
            attributes[tracing.TOOL_CALL_ARGUMENTS] = json.dumps(shown, separators=(",", ":"), ensure_ascii=False)
    return attributes


def _pre_check(
    state: PolicyState, principal: AgentPrincipal, call: CallRequest, decision: Decision, call_id: str, now: dt.datetime
) -> tuple[Decision, list[Callable[[ToolCall], None]]]:
    """Run the registered pre-decision checks (guardians); their reasons can only make the decision stricter."""
    outcomes = hooks.pre_checks(
        hooks.PreCheck(
            call_id=call_id,
            agent_id=principal.agent_id,
            tool=call.tool,
            arguments=call.arguments,
            context=call.context,
            decision=decision,
            snapshot=state.snapshot,
            now=now,
        )
    )
    added = [reason for outcome in outcomes for reason in outcome.reasons]
    recorders = [outcome.record for outcome in outcomes if outcome.record is not None]
    if not added:
        return decision, recorders
    strictest = decision.outcome
    for reason in added:
        if SEVERITY[reason.outcome] > SEVERITY[strictest]:
            strictest = reason.outcome
    return dataclasses.replace(decision, outcome=strictest, reasons=(*decision.reasons, *added)), recorders


def _decided_record(state: PolicyState, record: ToolCall) -> audit.Prepared:
    """The `tool_call.decided` audit record: the whole decision, sensitive values as salted digests."""
    return audit.prepare(
        actor=agent_actor(str(record.agent_id)),
        action="tool_call.decided",
        subject_type="tool_call",
        subject_id=str(record.id),
        agent_id=str(record.agent_id),
        tool=record.tool,
        at=record.created_at,
        payload={
            "tool_call": str(record.id),
            "agent": str(record.agent_id),
            "credential": record.credential_prefix,
            "tool": record.tool,
            "arguments": record.arguments,
            "arguments_sha256": record.arguments_digest,
            "context": record.context,
            "idempotency_key": record.idempotency_key,
            "decision": record.decision,
            "escalated": record.escalated,
            "reasons": record.reasons,
            "shadow": record.shadow,
            "contract_version": record.contract_version,
            "policy_version": record.policy_version,
            "token_expires_at": record.token_expires_at.isoformat() if record.token_expires_at else None,
            "latency_us": record.latency_us,
        },
    )


_TOOLCALL_FIELDS = list(ToolCall._meta.concrete_fields)
_AUDIT_FIELDS = [field for field in AuditRecord._meta.concrete_fields if not field.primary_key]
_STATEMENTS: dict[str, dict[str, str]] = {}  # per database alias


def _insert(record: ToolCall, audit_row: audit.Prepared | None) -> None:
    """INSERT the tool call and its audit record, atomically, without the ORM's per-call SQL compilation.

    The ORM's `save()` cost more than the engine itself on the hot path. On PostgreSQL both rows
    travel as JSON documents expanded by `jsonb_populate_record` against each table's row type,
    in one statement (a data-modifying CTE): one round trip, atomic even in autocommit, and a
    third less CPU than two dozen parameters. Elsewhere (SQLite) two parameterised INSERTs in
    one transaction. `created_at`/`updated_at` are set by the caller.
    """
    connection = connections[router.db_for_write(ToolCall)]
    statements = _STATEMENTS.get(connection.alias) or _STATEMENTS.setdefault(connection.alias, _statements(connection))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if audit_row is None:
                cursor.execute(statements["call"], [_json_row(record, _TOOLCALL_FIELDS)])
            else:
                rows = [_json_row(record, _TOOLCALL_FIELDS), _json_row(audit_row.columns, _AUDIT_FIELDS)]
                cursor.execute(statements["call+audit"], rows)
    else:
        call_params = _column_params(record, _TOOLCALL_FIELDS, connection)
        if audit_row is None:
            with connection.cursor() as cursor:
                cursor.execute(statements["call"], call_params)
        else:
            audit_params = _column_params(audit_row.columns, _AUDIT_FIELDS, connection)
            with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
                cursor.execute(statements["call"], call_params)
                cursor.execute(statements["audit"], audit_params)
    record._state.adding = False
    record._state.db = connection.alias


def _statements(connection: Any) -> dict[str, str]:
    """The INSERT statements for one database. Identifiers come from the models, quoted; every value is a parameter."""
    quote = connection.ops.quote_name
    calls, records = quote(ToolCall._meta.db_table), quote(AuditRecord._meta.db_table)
    audit_columns = ", ".join(quote(field.column) for field in _AUDIT_FIELDS)
    if connection.vendor == "postgresql":
        call = f"INSERT INTO {calls} SELECT * FROM jsonb_populate_record(NULL::{calls}, %s::jsonb)"  # noqa: S608
        return {
            "call": call,
            "call+audit": (
                f"WITH call AS ({call}) INSERT INTO {records} ({audit_columns}) "  # noqa: S608
                f"SELECT {audit_columns} FROM jsonb_populate_record(NULL::{records}, %s::jsonb)"
            ),
        }
    call_columns = ", ".join(quote(field.column) for field in _TOOLCALL_FIELDS)
    return {
        "call": f"INSERT INTO {calls} ({call_columns}) VALUES ({', '.join(['%s'] * len(_TOOLCALL_FIELDS))})",  # noqa: S608
        "audit": f"INSERT INTO {records} ({audit_columns}) VALUES ({', '.join(['%s'] * len(_AUDIT_FIELDS))})",  # noqa: S608
    }


def _value(source: Any, field: models.Field) -> Any:
    return source[field.column] if isinstance(source, dict) else getattr(source, field.attname)


def _json_row(source: Any, fields: list[models.Field]) -> str:
    """A row as `jsonb_populate_record` reads it (a JSON null becomes SQL NULL, in jsonb columns too)."""
    row = {field.column: _json_column(_value(source, field), field) for field in fields}
    return json.dumps(row, separators=(",", ":"), ensure_ascii=False)


def _column_params(source: Any, fields: list[models.Field], connection: Any) -> list[Any]:
    return [field.get_db_prep_save(_value(source, field), connection) for field in fields]


def _json_column(value: Any, field: models.Field) -> Any:
    """A column's value as `jsonb_populate_record` reads it: JSON columns as they are, others as text."""
    if value is None or isinstance(value, bool | int | str) or isinstance(field, models.JSONField):
        return value
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)  # UUID, Decimal


def _replay(principal: AgentPrincipal, call: CallRequest, digest: str) -> ToolCall | None:
    existing = ToolCall.objects.filter(agent_id=principal.agent_id, idempotency_key=call.idempotency_key).first()
    if existing is None:
        return None
    if (existing.tool, existing.arguments_digest, existing.context) != (call.tool, digest, call.context):
        raise Conflict(
            "This idempotency key was used for a different tool call; use a new key for a new call.",
            detail={"idempotency_key": call.idempotency_key, "original_call": str(existing.pk)},
        )
    existing.decision_token = _reissue(existing)  # type: ignore[attr-defined]
    return existing


def _reissue(existing: ToolCall) -> str | None:
    """The original decision's token again, while it would still be valid."""
    if existing.decision != Outcome.ALLOW or existing.token_expires_at is None:
        return None
    if existing.token_expires_at <= timezone.now():
        return None
    token, _ = tokens.issue(
        agent_id=str(existing.agent_id),
        tool=existing.tool,
        digest=existing.arguments_digest,
        call_id=str(existing.pk),
        policy_version=existing.policy_version,
        now=existing.token_expires_at - dt.timedelta(seconds=warden_settings.DECISION_TOKEN_TTL_SECONDS),
    )
    return token


def _decide(
    state: PolicyState, principal: AgentPrincipal, call: CallRequest, digest: str, now: dt.datetime
) -> Decision:
    snapshot = state.snapshot
    context = CallContext(
        session_id=str(call.context.get("session_id", "")),
        on_behalf_of=tuple(call.context.get("on_behalf_of") or ()),
        purpose=str(call.context.get("purpose", "")),
    )
    chain_ids = []
    for name in context.on_behalf_of:
        member = snapshot.agent(name)
        if member is not None and member.id not in chain_ids and member.id != principal.agent_id:
            chain_ids.append(member.id)
    holders = [principal.agent_id, *chain_ids]
    counts = counters.count_call(
        agents=holders, tool=call.tool, digest=digest, loop_window=snapshot.limits.loop_window_seconds
    )
    budgeted = [
        agent_id
        for agent_id in holders
        if (agent := snapshot.agents.get(agent_id)) is not None and agent.max_cost_per_day is not None
    ]
    request = Request(
        agent_id=principal.agent_id,
        tool=call.tool,
        arguments=call.arguments,
        now=now,
        contract_version=call.contract_version,
        context=context,
        counters=dataclasses.replace(counts, cost_today=_cost_today(budgeted, now)) if budgeted else counts,
    )
    return decide(snapshot, request)


def _cost_today(agent_ids: list[str], now: dt.datetime) -> dict[str, Decimal]:
    """Reported cost since midnight UTC, per agent: the durable record is the source of truth."""
    midnight = now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = (
        ToolCall.objects.filter(agent_id__in=agent_ids, result_reported_at__gte=midnight, cost__isnull=False)
        .values("agent_id")
        .annotate(total=Sum("cost"))
    )
    return {str(row["agent_id"]): Decimal(row["total"]) for row in rows}


# Settling escalations -------------------------------------------------------------------------


def settle_escalation(
    call_id: Any, *, outcome: str, reason: Reason | None = None, now: dt.datetime | None = None
) -> ToolCall:
    """Turn an escalated call into allow (with a decision token) or deny; the approval queue calls this.

    Runs inside the caller's transaction, which records the approval step that settled the call.
    The token is not returned here: the agent fetches it with its own key (GET /tool-calls/<id>),
    which re-issues the same token while it is valid.
    """
    if outcome not in (Outcome.ALLOW, Outcome.DENY):
        raise ValueError(f"An escalation settles to allow or deny, not {outcome!r}.")
    now = now or timezone.now()
    call = ToolCall.objects.select_for_update().get(pk=call_id)
    if not call.escalated or call.settled_at is not None or call.decision != Outcome.ESCALATE:
        raise Conflict(
            "This tool call is not waiting for a human.",
            detail={"decision": call.decision, "settled_at": call.settled_at.isoformat() if call.settled_at else None},
        )
    call.decision = str(outcome)
    call.settled_at = now
    if reason is not None:
        call.reasons = [*call.reasons, reason.as_dict()]
    fields = ["decision", "settled_at", "reasons", "updated_at"]
    if outcome == Outcome.ALLOW:
        _, call.token_expires_at = tokens.issue(
            agent_id=str(call.agent_id),
            tool=call.tool,
            digest=call.arguments_digest,
            call_id=str(call.pk),
            policy_version=call.policy_version,
            now=now,
        )
        fields.append("token_expires_at")
    call.save(update_fields=fields)
    transaction.on_commit(lambda: waiting.notify(str(call.pk)))
    return call


def current_token(call: ToolCall) -> str | None:
    """The decision token of an allowed call, again, while it is valid (same bytes: Ed25519 is deterministic)."""
    return _reissue(call)


# Results -------------------------------------------------------------------------------------


def report_result(principal: AgentPrincipal, call_id: Any, body: Any) -> ToolCall:
    """Record what the tool did; an output that breaks the output schema is recorded as contract drift."""
    check_body(_RESULT, body)
    with transaction.atomic():
        call = ToolCall.objects.select_for_update().filter(pk=call_id, agent_id=principal.agent_id).first()
        if call is None:
            from core.errors import NotFound

            raise NotFound("No tool call of this agent has this id.")
        if call.result_reported_at is not None:
            raise Conflict(
                "The result of this call was already reported.",
                detail={"result_status": call.result_status, "reported_at": call.result_reported_at.isoformat()},
            )
        if call.decision != Outcome.ALLOW:
            raise Conflict(
                f"This call was not allowed ({call.decision}); the tool must not have run.",
                detail={"decision": call.decision},
            )
        output = body.get("output")
        usage = body.get("usage") or {}
        snapshot = snapshots.current().snapshot
        contract = snapshot.contracts.get(call.tool, {}).get(call.contract_version or 0)
        secret = contract.sensitive_output if contract else ()
        drift = _drift(contract, output) if body["status"] == "succeeded" else []
        call.result_status = body["status"]
        call.output = sensitive.mask(output, secret)
        call.usage = usage or None
        call.cost = Decimal(str(usage["cost"])) if "cost" in usage else None
        call.contract_drift = bool(drift)
        call.drift = drift = sensitive.redact_messages(drift, secret)
        call.result_reported_at = timezone.now()
        call.save(
            update_fields=[
                "result_status",
                "output",
                "usage",
                "cost",
                "contract_drift",
                "drift",
                "result_reported_at",
                "updated_at",
            ]
        )
        audit.append(
            actor=agent_actor(str(call.agent_id)),
            action="tool_call.result_reported",
            subject_type="tool_call",
            subject_id=str(call.pk),
            agent_id=str(call.agent_id),
            tool=call.tool,
            at=call.result_reported_at,
            payload={
                "tool_call": str(call.pk),
                "status": call.result_status,
                "output": call.output,
                "usage": usage or None,
                "cost": str(call.cost) if call.cost is not None else None,
                "contract_drift": call.contract_drift,
                "drift": drift,
            },
        )
        hooks.result_reported(call)  # guardians queue their scoring once this commits
    if call.contract_drift:
        metrics.record_drift(metrics.tool_label(call.tool, snapshot))
    return call


def agent_actor(agent_id: str) -> Actor:
    """The actor for an agent acting through its key, labelled with its slug from the cached snapshot."""
    agent = snapshots.current().snapshot.agents.get(agent_id)
    return Actor(kind="agent", id=agent_id, label=agent.slug if agent else agent_id)


def _drift(contract: ContractView | None, output: Any) -> list[dict[str, str]]:
    if contract is None:
        return []
    try:
        if contract.output.is_valid(output):
            return []
    except (jsonschema_rs.ValidationError, ValueError):
        pass
    return [{"pointer": error.pointer, "message": error.message} for error in contract.output.report(output)]
