"""Tracing: each decision is an `execute_tool` span in the agent's trace, guardian scores are evaluation events,
arguments stay out unless asked for (and sensitive fields always do), and the environment picks the exporter.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.trace import SpanKind, StatusCode

from approvals.models import Approval
from core import tracing
from guardian.models import Assessment
from guardian.tests.conftest import EXFILTRATION, INJECTED, Fleet
from policy import services
from policy.tests.builders import PAYMENT_SCHEMA, VALID_PAYMENT
from policy.tests.conftest import LivePolicy
from telemetry import tracing as telemetry_tracing

URL = "/api/v1/tool-calls"
AGENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{AGENT_TRACE_ID}-{AGENT_SPAN_ID}-01"


def ask(policy: LivePolicy, arguments: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
    payload = {"tool": "payments.transfer", "arguments": VALID_PAYMENT if arguments is None else arguments, **body}
    response = policy.client().post(URL, payload, format="json", HTTP_TRACEPARENT=TRACEPARENT)
    assert response.status_code == 200, response.content
    return response.json()


def decision_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [span for span in spans.get_finished_spans() if span.name.startswith("execute_tool ")]


def only_decision(spans: InMemorySpanExporter) -> ReadableSpan:
    found = decision_spans(spans)
    assert len(found) == 1, [span.name for span in spans.get_finished_spans()]
    return found[0]


def server_span(spans: InMemorySpanExporter, method: str = "POST") -> ReadableSpan:
    finished = spans.get_finished_spans()
    found = [span for span in finished if span.kind is SpanKind.SERVER and span.name.startswith(method)]
    assert len(found) == 1, [span.name for span in spans.get_finished_spans()]
    return found[0]


def everything_recorded(spans: InMemorySpanExporter) -> str:
    """Every name, attribute and event of every span, as one string to search for values that must not be there."""
    recorded = [
        [span.name, dict(span.attributes or {}), [[event.name, dict(event.attributes or {})] for event in span.events]]
        for span in spans.get_finished_spans()
    ]
    return json.dumps(recorded, default=str)


# The decision span --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_allowed_call_is_an_execute_tool_span_in_the_agents_trace(live_policy, spans):
    decided = ask(live_policy)
    span = only_decision(spans)
    request = server_span(spans)
    assert (span.name, span.kind, span.status.status_code) == (
        "execute_tool payments.transfer",
        SpanKind.INTERNAL,
        StatusCode.UNSET,
    )
    assert dict(span.attributes or {}) == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "payments.transfer",
        "gen_ai.tool.call.id": decided["id"],
        "gen_ai.agent.id": str(live_policy.agent.pk),
        "gen_ai.agent.name": live_policy.agent.name,
        "warden.agent.slug": "payer",
        "warden.decision": "allow",
        "warden.reason_codes": (),
        "warden.policy.version": decided["policy_version"],
        "warden.contract.version": 1,
    }
    # The agent's traceparent is honoured: the request's span continues the agent's span, the decision is its child.
    assert f"{span.context.trace_id:032x}" == f"{request.context.trace_id:032x}" == AGENT_TRACE_ID
    assert f"{request.parent.span_id:016x}" == AGENT_SPAN_ID
    assert request.parent.is_remote
    assert span.parent.span_id == request.context.span_id


@pytest.mark.django_db
def test_a_deny_is_a_decision_not_an_error(live_policy, spans):
    ask(live_policy, {**VALID_PAYMENT, "amount": 6000})
    span = only_decision(spans)
    assert (span.attributes["warden.decision"], span.attributes["warden.reason_codes"]) == (
        "deny",
        ("limit_exceeded",),
    )
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in span.attributes


@pytest.mark.django_db
def test_an_escalated_call_names_its_approval(live_policy, spans):
    services.rule_create(
        actor=live_policy.actor,
        name="Large payments need a human",
        expression="args.amount > 1000",
        effect="escalate",
        message="Payments over 1,000 need approval.",
    )
    decided = ask(live_policy)
    span = only_decision(spans)
    approval = Approval.objects.get(tool_call_id=decided["id"])
    assert (span.attributes["warden.decision"], span.attributes["warden.reason_codes"]) == (
        "escalate",
        ("rule_escalated",),
    )
    assert span.attributes["warden.approval.id"] == str(approval.pk) == decided["approval"]["id"]


@pytest.mark.django_db
def test_a_replayed_idempotency_key_says_so_and_names_the_first_call(live_policy, spans):
    first = ask(live_policy, idempotency_key="invoice-17")
    again = ask(live_policy, idempotency_key="invoice-17")
    original, replayed = decision_spans(spans)
    assert (
        first["id"]
        == again["id"]
        == original.attributes["gen_ai.tool.call.id"]
        == replayed.attributes["gen_ai.tool.call.id"]
    )
    assert ("warden.idempotent_replay" in original.attributes, replayed.attributes["warden.idempotent_replay"]) == (
        False,
        True,
    )


@pytest.mark.django_db
def test_an_engine_failure_and_an_undecidable_request_are_error_spans(live_policy, spans, monkeypatch):
    from policy.engine.decide import _Decider

    def broken(self: Any) -> Any:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(_Decider, "run", broken)
    assert ask(live_policy)["reasons"][0]["code"] == "internal_error"
    span = only_decision(spans)
    assert (span.status.status_code, span.attributes["error.type"], span.attributes["warden.decision"]) == (
        StatusCode.ERROR,
        "internal_error",
        "deny",
    )
    monkeypatch.undo()
    spans.clear()
    # Arguments Warden cannot canonicalise: the caller's error, raised while deciding.
    response = live_policy.client().post(
        URL, {"tool": "payments.transfer", "arguments": {**VALID_PAYMENT, "amount": 2**60}}, format="json"
    )
    assert response.status_code == 400, response.content
    span = only_decision(spans)
    assert (span.status.status_code, span.attributes["error.type"]) == (StatusCode.ERROR, "invalid")


# Arguments ----------------------------------------------------------------------------------------

SECRET_ACCOUNT = "DE44500105175407324931"


def _with_sensitive_account(policy: LivePolicy) -> None:
    schema = json.loads(json.dumps(PAYMENT_SCHEMA))
    schema["properties"]["account"]["x-warden-sensitive"] = True
    services.contract_create(actor=policy.actor, tool="payments.transfer", input_schema=schema, activate=True)


@pytest.mark.django_db
def test_arguments_stay_out_of_spans_by_default(live_policy, spans):
    _with_sensitive_account(live_policy)
    ask(live_policy, {**VALID_PAYMENT, "account": SECRET_ACCOUNT, "reason": "Fraud case 0815"})
    span = only_decision(spans)
    assert "gen_ai.tool.call.arguments" not in span.attributes
    recorded = everything_recorded(spans)
    assert SECRET_ACCOUNT not in recorded
    assert "Fraud case 0815" not in recorded


@pytest.mark.django_db
def test_arguments_when_enabled_leave_sensitive_fields_out_entirely(live_policy, spans, settings):
    settings.WARDEN = {**settings.WARDEN, "TRACE_ARGUMENTS": True}
    _with_sensitive_account(live_policy)
    decided = ask(live_policy, {**VALID_PAYMENT, "account": SECRET_ACCOUNT})
    assert decided["contract_version"] == 2
    span = only_decision(spans)
    shown = json.loads(span.attributes["gen_ai.tool.call.arguments"])
    assert shown == {"amount": 2500, "currency": "EUR", "reason": "Fraud case"}  # no account: not even its digest
    recorded = everything_recorded(spans)
    assert SECRET_ACCOUNT not in recorded
    assert "$sensitive" not in recorded


# Guardian scores ----------------------------------------------------------------------------------


def evaluations(span: ReadableSpan) -> list[dict[str, Any]]:
    return [dict(event.attributes or {}) for event in span.events if event.name == "gen_ai.evaluation.result"]


@pytest.mark.django_db
def test_a_pre_check_adds_its_scores_to_the_decision_span(fleet: Fleet, spans):
    decided = fleet.ask("assistant", "email.send", EXFILTRATION, purpose="Send the weekly report.")
    span = only_decision(spans)
    (event,) = evaluations(span)
    assessment = Assessment.objects.get(tool_call_id=decided["id"])
    score = assessment.scores.get()
    assert {key: value for key, value in event.items() if key != "gen_ai.evaluation.explanation"} == {
        "gen_ai.evaluation.name": "content",
        "gen_ai.evaluation.score.value": pytest.approx(score.value),
        "gen_ai.evaluation.score.label": "unsafe",
        "gen_ai.tool.call.id": decided["id"],
        "warden.guardian": "sentinel",
        "warden.guardian.stage": "precheck",
        "warden.guardian.subject": "tool_call",
        "warden.assessment.id": assessment.pk,
        "warden.assessment.value": pytest.approx(assessment.value),
        "warden.assessment.action": assessment.action,
    }
    # The findings, as their stored messages show them (the destination and the key half hidden).
    assert event["gen_ai.evaluation.explanation"] == " ".join(reason["message"] for reason in score.reasons)
    assert "AKIA…MPLE" in event["gen_ai.evaluation.explanation"]
    assert "AKIAIOSFODNN7EXAMPLE" not in everything_recorded(spans)


@pytest.mark.django_db(transaction=True)
def test_the_scoring_task_joins_the_trace_of_the_result_report(fleet: Fleet, spans):
    decided = fleet.ask("assistant", "docs.read", {"path": "/inbox/reviews.txt"}, purpose="Summarise the reviews.")
    spans.clear()
    response = fleet.client("assistant").post(
        f"/api/v1/tool-calls/{decided['id']}/result",
        {"status": "succeeded", "output": {"reviews": [INJECTED]}},
        format="json",
        HTTP_TRACEPARENT=TRACEPARENT,
    )
    assert response.status_code == 200, response.content
    finished = spans.get_finished_spans()
    (task,) = [span for span in finished if span.name == "run/guardian.score_result"]
    request = server_span(spans)
    # The task was queued when the result committed, inside the request: it belongs to the agent's trace.
    assert {f"{span.context.trace_id:032x}" for span in finished} == {AGENT_TRACE_ID}
    assert task.parent is not None
    scored = evaluations(task)
    assert {(event["warden.guardian.subject"], event["gen_ai.evaluation.name"]) for event in scored} == {
        ("tool_call", "content"),
        ("tool_output", "content"),
    }
    output = next(event for event in scored if event["warden.guardian.subject"] == "tool_output")
    assert (output["gen_ai.evaluation.score.label"], output["warden.guardian.stage"]) == ("unsafe", "result")
    assert output["gen_ai.tool.call.id"] == decided["id"]
    assert output["gen_ai.evaluation.explanation"]
    assert request.end_time >= task.end_time  # scored within the request (eager tasks in the test settings)


def test_a_finding_in_a_sensitive_argument_is_explained_by_its_code_alone():
    from guardian.scorers import ScoreReason
    from guardian.services import _explained

    secret = (("account",),)
    leaking = ScoreReason(code="unusual_amount", message="Argument /account is 4711.", where="/arguments/account")
    harmless = ScoreReason(code="unusual_amount", message="Argument /amount is 12.", where="/arguments/amount")
    assert _explained(leaking, secret) == "unusual_amount (in a sensitive argument)."
    assert _explained(harmless, secret) == "Argument /amount is 12."


# Tracing off --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_provider_nothing_is_recorded_and_no_span_is_entered(live_policy):
    assert not tracing.is_tracing()
    with tracing.start_span("warden.test", "nothing", {}) as span:
        assert not span.is_recording()
        assert not tracing.is_recording()
    assert ask(live_policy)["decision"] == "allow"


def test_the_attribute_names_are_the_semantic_conventions():
    """Warden keeps its own copy of the GenAI names (they are in development); they must match the package's."""
    for ours, theirs in [
        (tracing.OPERATION_NAME, gen_ai_attributes.GEN_AI_OPERATION_NAME),
        (tracing.EXECUTE_TOOL, gen_ai_attributes.GenAiOperationNameValues.EXECUTE_TOOL.value),
        (tracing.TOOL_NAME, gen_ai_attributes.GEN_AI_TOOL_NAME),
        (tracing.TOOL_CALL_ID, gen_ai_attributes.GEN_AI_TOOL_CALL_ID),
        (tracing.TOOL_CALL_ARGUMENTS, gen_ai_attributes.GEN_AI_TOOL_CALL_ARGUMENTS),
        (tracing.AGENT_ID, gen_ai_attributes.GEN_AI_AGENT_ID),
        (tracing.AGENT_NAME, gen_ai_attributes.GEN_AI_AGENT_NAME),
        (tracing.EVALUATION_NAME, gen_ai_attributes.GEN_AI_EVALUATION_NAME),
        (tracing.EVALUATION_SCORE_VALUE, gen_ai_attributes.GEN_AI_EVALUATION_SCORE_VALUE),
        (tracing.EVALUATION_SCORE_LABEL, gen_ai_attributes.GEN_AI_EVALUATION_SCORE_LABEL),
        (tracing.EVALUATION_EXPLANATION, gen_ai_attributes.GEN_AI_EVALUATION_EXPLANATION),
    ]:
        assert ours == theirs


# Configuration ------------------------------------------------------------------------------------

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture
def otel_env(monkeypatch):
    """A clean slate of OTEL_* variables; set the ones a test needs."""
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _exporters(provider: Any) -> list[type]:
    processors = provider._active_span_processor._span_processors  # no public view of a provider's processors
    return [type(processor.span_exporter) for processor in processors]


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({}, None),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, [OTLPSpanExporter]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, [OTLPSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "console"}, [ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, [OTLPSpanExporter, ConsoleSpanExporter]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, None),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, None),
    ],
    ids=["nothing-by-default", "otlp-by-endpoint", "otlp-by-traces-endpoint", "console", "both", "none", "disabled"],
)
def test_the_environment_chooses_the_exporters(otel_env, variables, expected):
    for name, value in variables.items():
        otel_env.setenv(name, value)
    provider = telemetry_tracing.tracer_provider()
    if expected is None:
        assert provider is None
    else:
        assert _exporters(provider) == expected
        provider.shutdown()


def test_the_service_is_warden_unless_named(otel_env):
    otel_env.setenv("OTEL_TRACES_EXPORTER", "console")
    assert telemetry_tracing.tracer_provider().resource.attributes["service.name"] == "warden"
    otel_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=warden-eu,deployment.environment=prod")
    assert telemetry_tracing.tracer_provider().resource.attributes["service.name"] == "warden-eu"
    otel_env.setenv("OTEL_SERVICE_NAME", "warden-web")
    assert telemetry_tracing.tracer_provider().resource.attributes["service.name"] == "warden-web"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "zipkin"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
    ],
)
def test_an_exporter_warden_cannot_run_refuses_to_start(otel_env, variables, named):
    for name, value in variables.items():
        otel_env.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=named):
        telemetry_tracing.tracer_provider()
