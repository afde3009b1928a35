"""Spans and span events for every layer, named after OpenTelemetry's GenAI semantic conventions.

Policy, approvals and guardians describe what they do through these helpers. Whether anything is
recorded is decided once per process by `telemetry.tracing.configure()`, which installs an SDK
tracer provider only when spans are exported. Until it does, the OpenTelemetry API is a no-op,
and `start_span` does not even enter it: the decision path pays one check, not a no-op span
(a no-op span still costs about 5 µs of context switching).

The GenAI conventions are still in development; the names are kept here, in one place, so a
rename upstream is a one-line change.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from core.errors import WardenError

# GenAI semantic conventions: the tool-execution span and its evaluation events.
OPERATION_NAME = "gen_ai.operation.name"
EXECUTE_TOOL = "execute_tool"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"  # opt-in: WARDEN_TRACE_ARGUMENTS, sensitive fields left out
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
EVALUATION_RESULT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE_VALUE = "gen_ai.evaluation.score.value"
EVALUATION_SCORE_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"
ERROR_TYPE = "error.type"

# Warden's governance attributes.
AGENT_SLUG = "warden.agent.slug"
DECISION = "warden.decision"
REASON_CODES = "warden.reason_codes"
POLICY_VERSION = "warden.policy.version"
CONTRACT_VERSION = "warden.contract.version"
APPROVAL_ID = "warden.approval.id"
IDEMPOTENT_REPLAY = "warden.idempotent_replay"
GUARDIAN = "warden.guardian"
GUARDIAN_STAGE = "warden.guardian.stage"
GUARDIAN_SUBJECT = "warden.guardian.subject"
ASSESSMENT_ID = "warden.assessment.id"
ASSESSMENT_VALUE = "warden.assessment.value"
ASSESSMENT_ACTION = "warden.assessment.action"

MAX_EXPLANATION = 1000  # characters: an event explains a score, it does not carry documents

Attributes = Mapping[str, AttributeValue]

# Shared by every caller: entering and leaving it does nothing, and the span it yields records nothing.
_NOT_TRACING: contextlib.nullcontext[Span] = contextlib.nullcontext(trace.INVALID_SPAN)


def is_tracing() -> bool:
    """Whether this process records spans at all (`telemetry.tracing.configure()` installed a provider)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def is_recording() -> bool:
    """Whether the span in progress records what it is given; callers skip building attributes otherwise."""
    return trace.get_current_span().is_recording()


def start_span(scope: str, name: str, attributes: Attributes) -> contextlib.AbstractContextManager[Span]:
    """An INTERNAL span named `name`, current while the block runs, child of the span in progress.

    An exception leaving the block marks the span as an error with its `error.type` (a Warden
    error's code, otherwise the exception's class). When this process does not trace, the block
    gets a span that records nothing, at almost no cost.
    """
    if not is_tracing():
        return _NOT_TRACING
    return _span(_tracer(scope, trace.get_tracer_provider()), name, attributes)


@contextlib.contextmanager
def _span(tracer: Tracer, name: str, attributes: Attributes) -> Iterator[Span]:
    with tracer.start_as_current_span(name, kind=SpanKind.INTERNAL, attributes=attributes) as span:
        try:
            yield span
        except Exception as error:
            span.set_attribute(ERROR_TYPE, error.code if isinstance(error, WardenError) else type(error).__qualname__)
            raise


@functools.cache
def _tracer(scope: str, provider: trace.TracerProvider) -> Tracer:
    """One tracer per scope and provider: creating one per span would cost more than the span."""
    return provider.get_tracer(scope)


def mark_error(span: Span, error_type: str, description: str) -> None:
    """Mark a span as failed without an exception (an engine error that was turned into a deny)."""
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(Status(StatusCode.ERROR, description))


def annotate(attributes: Attributes) -> None:
    """Add attributes to the span in progress, if it records: a hook describes the decision it joined."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes(attributes)


def record_evaluation(*, name: str, value: float, label: str, explanation: str, attributes: Attributes) -> None:
    """A `gen_ai.evaluation.result` event on the span in progress: one score of one evaluator."""
    span = trace.get_current_span()
    if not span.is_recording():
        return
    event: dict[str, AttributeValue] = {
        EVALUATION_NAME: name,
        EVALUATION_SCORE_VALUE: float(value),
        EVALUATION_SCORE_LABEL: label,
        **attributes,
    }
    if explanation:
        event[EVALUATION_EXPLANATION] = explanation[:MAX_EXPLANATION]
    span.add_event(EVALUATION_RESULT, event)
