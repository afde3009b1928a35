"""The one interface every guardian scorer implements, and the values it passes around.

A scorer is pure with respect to Warden: it gets a `Subject` (a tool call, a tool output or an
agent output, with the watched agent's context and, where the caller has them, the agent's
history and behaviour baseline) and returns a `Score`. It reads no database and writes
nothing; `guardian.services` gathers the context, runs the scorers and acts on the scores.
Scorers are found by name through `guardian.scorers.registry`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable


class ScorerUnavailable(Exception):
    """The scorer cannot run here (no model configured, a model that does not load); it is skipped, loudly."""


class SubjectKind(StrEnum):
    """What is being judged. The evaluation data (shared/eval) uses the same names."""

    TOOL_CALL = "tool_call"  # a call an agent asked to make: tool + arguments, judged against its task
    TOOL_OUTPUT = "tool_output"  # what a tool returned to the agent: may carry injected instructions
    AGENT_OUTPUT = "agent_output"  # what the agent said or did next: did it act on an injection?


class Label(StrEnum):
    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True, slots=True)
class AgentContext:
    """The watched agent as the scorer sees it: the policy a Llama-Guard-style prompt is written from."""

    id: str = ""
    slug: str = ""
    role: str = ""  # the role's name or slug, e.g. "banking assistant"
    description: str = ""  # what the agent does and for whom
    risk_tier: str = "medium"
    authority: tuple[str, ...] = ()  # the tools it holds grants for


@dataclass(frozen=True, slots=True)
class History:
    """What the agent has done before, for scorers that judge novelty (exfiltration, behaviour).

    `destinations` holds every recipient, URL host and account the agent sent something to
    before this subject (lower-cased). `baseline` is the agent's behaviour baseline as stored
    (see `guardian.scorers.behaviour.Baseline`), or None when nothing was observed yet.
    `calls_last_minute` is how many calls the agent made in the minute up to this one (a rate
    counter the caller keeps), or None when unknown.
    """

    destinations: frozenset[str] = frozenset()
    baseline: Mapping[str, Any] | None = None
    calls_last_minute: int | None = None


@dataclass(frozen=True, slots=True)
class Subject:
    """One thing to judge, with the context to judge it by."""

    kind: SubjectKind
    agent: AgentContext = AgentContext()
    tool: str | None = None
    arguments: Mapping[str, Any] | None = None
    # TOOL_CALL: the task the call should serve (context.purpose, or the user's instruction).
    # TOOL_OUTPUT: the tool's output as text. AGENT_OUTPUT: the agent's message.
    text: str = ""
    purpose: str = ""  # the task purpose, for outputs too when known
    history: History | None = None
    # For the behaviour scorer: when the call was made, and how the policy engine decided it.
    at_hour: int | None = None  # 0-23 UTC
    decision: str | None = None  # allow / escalate / deny
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ScoreReason:
    """Why a scorer scored high: a stable code, a message naming what and where."""

    code: str  # e.g. injected_instruction, secret, personal_data, exfiltration, unusual_tool
    message: str
    where: str = ""  # "text[120:184]", "/arguments/to", "output", ...
    weight: float = 0.0  # how much this finding contributed to the value

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.where:
            data["where"] = self.where
        if self.weight:
            data["weight"] = round(self.weight, 4)
        return data


@dataclass(frozen=True, slots=True)
class Score:
    """A scorer's judgement of one subject: P(unsafe)-like value in [0, 1], a label, reasons, latency."""

    scorer: str
    value: float
    label: Label
    reasons: tuple[ScoreReason, ...] = ()
    latency_ms: float = 0.0
    detail: Mapping[str, Any] = field(default_factory=dict)  # scorer-specific figures (tokens, logits, ...)

    def __post_init__(self) -> None:
        if not 0.0 <= self.value <= 1.0:
            raise ValueError(f"A score lies in [0, 1], not {self.value!r}.")

    def as_dict(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer,
            "value": round(self.value, 6),
            "label": str(self.label),
            "reasons": [reason.as_dict() for reason in self.reasons],
            "latency_ms": round(self.latency_ms, 3),
            "detail": dict(self.detail),
        }


@runtime_checkable
class Scorer(Protocol):
    """What a scorer implements. `fast` scorers may run on the decision path (pre-checks)."""

    name: ClassVar[str]
    kinds: ClassVar[frozenset[SubjectKind]]  # the subject kinds it can judge
    fast: ClassVar[bool]
    threshold: float  # the value at and above which its label is `unsafe`

    def score(self, subject: Subject) -> Score: ...


class BaseScorer:
    """Convenience base: times `evaluate` and builds the Score with the label from `threshold`."""

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[SubjectKind]] = frozenset(SubjectKind)
    fast: ClassVar[bool] = True
    threshold: float = 0.5

    def score(self, subject: Subject) -> Score:
        started = time.perf_counter()
        value, reasons, detail = self.evaluate(subject)
        value = min(1.0, max(0.0, float(value)))
        return Score(
            scorer=self.name,
            value=value,
            label=Label.UNSAFE if value >= self.threshold else Label.SAFE,
            reasons=tuple(reasons),
            latency_ms=(time.perf_counter() - started) * 1000.0,
            detail=detail,
        )

    def evaluate(self, subject: Subject) -> tuple[float, list[ScoreReason], dict[str, Any]]:
        raise NotImplementedError
