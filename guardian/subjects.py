"""Turn a tool call into the subjects a guardian judges, with the context scorers need.

Scorers are pure; everything they know about the watched agent comes from here: its role and
authority from the policy snapshot, what it was asked to do (the call's `purpose`), and what it
did before (its `AgentProfile`: behaviour baseline and the destinations it sent to).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from guardian.scorers.base import AgentContext, History, Subject, SubjectKind
from policy.engine import Snapshot

MAX_OUTPUT_CHARS = 200_000  # a tool output is judged on at most this much text (head and tail kept)
MAX_DESTINATIONS = 500

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}")
_URL = re.compile(
    r"\b(?:https?|ftp)://[^\s\"'<>]{1,2048}|\bwww\.[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,24}\b[^\s\"'<>]{0,2048}"
)
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")


def agent_context(snapshot: Snapshot, agent_id: str, *, description: str = "") -> AgentContext:
    """The watched agent as the policy snapshot knows it: role, risk tier, and the tools it may use."""
    view = snapshot.agents.get(agent_id)
    if view is None:
        return AgentContext(id=agent_id, description=description)
    return AgentContext(
        id=view.id,
        slug=view.slug,
        role=view.role or "",
        description=description or view.name,
        risk_tier=view.risk_tier,
        authority=tuple(sorted(snapshot.grants.get(agent_id, {}))),
    )


def call_subject(
    *,
    agent: AgentContext,
    tool: str,
    arguments: Mapping[str, Any],
    context: Mapping[str, Any],
    history: History | None,
    at_hour: int | None,
    decision: str | None,
    call_id: str | None,
) -> Subject:
    """The call itself, judged against the task it serves (`context.purpose`)."""
    purpose = str(context.get("purpose", "") or "")
    return Subject(
        kind=SubjectKind.TOOL_CALL,
        agent=agent,
        tool=tool,
        arguments=arguments,
        text=purpose,
        purpose=purpose,
        history=history,
        at_hour=at_hour,
        decision=decision,
        call_id=call_id,
    )


def output_subject(
    *, agent: AgentContext, tool: str, arguments: Mapping[str, Any], output: Any, purpose: str, call_id: str
) -> Subject | None:
    """What the tool returned, as text; None when there is nothing to judge."""
    if output is None or output == "" or output == {} or output == []:
        return None
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_OUTPUT_CHARS:
        half = MAX_OUTPUT_CHARS // 2
        text = text[:half] + "\n…\n" + text[-half:]
    return Subject(
        kind=SubjectKind.TOOL_OUTPUT,
        agent=agent,
        tool=tool,
        arguments=arguments,
        text=text,
        purpose=purpose,
        call_id=call_id,
    )


def destinations(arguments: Any) -> set[str]:
    """Recipients, hosts and accounts named anywhere in a call's arguments, lower-cased."""
    found: set[str] = set()
    for text in _strings(arguments):
        found.update(match.lower() for match in _EMAIL.findall(text))
        for url in _URL.findall(text):
            host = urlsplit(url if "://" in url else "http://" + url).hostname
            if host:
                found.add(host.lower().removeprefix("www."))
        found.update(match.replace(" ", "").lower() for match in _IBAN.findall(text))
    return found


def _strings(value: Any, depth: int = 0) -> Iterator[str]:
    if depth > 20:
        return
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item, depth + 1)


def remember(known: list[str], new: set[str]) -> list[str]:
    """The agent's known destinations with `new` added, most recent last, bounded."""
    if not new:
        return known
    kept = [item for item in known if item not in new]
    return (kept + sorted(new))[-MAX_DESTINATIONS:]
