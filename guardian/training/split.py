"""Which labelled rows train the classifier and which are held out to validate it (pure Python).

The split is by source and category, not by row: the validation split holds phrasings, tools
and whole tool suites the training split has not seen, so its figures say how the model does on
something new rather than on near-copies of what it learnt.

- AgentDojo: every row of the held-out suites (tool calls and tool outputs); tool outputs of
  the held-out attack types (attack phrasings) and of the held-out tools, in any suite.
- InjecAgent (`injecagent` and `injecagent_runs`): every row of the held-out user cases (the
  user's tool and its response template) and of the held-out attack types (the attacker cases
  of those types, with their attacker tools and instructions). A test case's index gives its
  user case (`index % 17`) and attacker case (`index // 17`), the layout of InjecAgent's files;
  the attacker cases of each attack type are read from the rows' categories when the split is
  built and recorded in it, so an agent output (whose category does not name the type) is
  placed by its attacker case.
- Any other source: a stable 1-in-4 hash of the row id.

The definition is a JSON-able dict stored in the classifier artifact, so `guardian_eval
--split validation` selects exactly the rows the committed model never saw.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

TRAIN = "train"
VALIDATION = "validation"
INJECAGENT_USER_CASES = 17  # InjecAgent's test-case files list 17 user cases per attacker case

HELD_AGENTDOJO_SUITES = ("banking",)
HELD_AGENTDOJO_ATTACKS = (
    "ignore_previous",
    "important_instructions_wrong_user_name",
    "swearwords_dos",
    "tool_knowledge",
)
HELD_AGENTDOJO_OUTPUT_TOOLS = (
    "create_file",
    "get_hotels_prices",
    "get_rating_reviews_for_car_rental",
    "get_restaurants_address",
    "search_calendar_events",
    "search_files_by_filename",
)
HELD_INJECAGENT_USER_CASES = (1, 10, 12, 16)  # Evernote, Teladoc, Twilio, WebBrowser: whole tool families
HELD_INJECAGENT_ATTACK_TYPES = ("Financial Harm", "Physical Data")  # one direct-harm, one data-stealing type
_TYPED_CATEGORIES = ("direct_harm", "data_stealing", "attacker_tool", "exfiltration")


class LabelledRow(Protocol):
    """What the split reads of a row (guardian.evaluation.EvalRow has it)."""

    @property
    def id(self) -> str: ...
    @property
    def source(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def tool(self) -> str | None: ...
    @property
    def agent_role(self) -> str | None: ...


def injecagent_case(row_id: str) -> tuple[str | None, int | None, int | None]:
    """(dh|ds, user case, attacker case) of an InjecAgent row id; None where the id does not say."""
    parts = row_id.split(":")
    try:
        if parts[0] == "injecagent" and parts[1] == "user_case":
            return None, int(parts[2]), None
        if parts[0] == "injecagent":
            family, index = parts[1].split("_", 1)[0], int(parts[2])
        elif parts[0] == "injecagent_runs":
            family, index = parts[3], int(parts[4])
        else:
            return None, None, None
    except (IndexError, ValueError):
        return None, None, None
    return family, index % INJECAGENT_USER_CASES, index // INJECAGENT_USER_CASES


def attack_type(category: str | None) -> str | None:
    """The InjecAgent attack type a category names (`direct_harm/Financial Harm` -> `Financial Harm`)."""
    if not category or "/" not in category:
        return None
    prefix, _, name = category.partition("/")
    return name if prefix in _TYPED_CATEGORIES else None


def build_split(rows: Iterable[LabelledRow]) -> dict[str, Any]:
    """The split definition for these rows: the fixed held-out groups plus the attacker cases of the held types."""
    held_cases: dict[str, set[int]] = {"dh": set(), "ds": set()}
    for row in rows:
        if not row.source.startswith("injecagent"):
            continue
        family, _, attacker = injecagent_case(row.id)
        if family in held_cases and attacker is not None and attack_type(row.category) in HELD_INJECAGENT_ATTACK_TYPES:
            held_cases[family].add(attacker)
    return {
        "agentdojo": {
            "held_suites": list(HELD_AGENTDOJO_SUITES),
            "held_output_attacks": list(HELD_AGENTDOJO_ATTACKS),
            "held_output_tools": list(HELD_AGENTDOJO_OUTPUT_TOOLS),
        },
        "injecagent": {
            "held_user_cases": list(HELD_INJECAGENT_USER_CASES),
            "held_attack_types": list(HELD_INJECAGENT_ATTACK_TYPES),
            "held_attacker_cases": {family: sorted(cases) for family, cases in sorted(held_cases.items())},
            "user_cases_per_attacker_case": INJECAGENT_USER_CASES,
        },
        "other_sources": "crc32(id) % 4 == 0",
    }


def agentdojo_suite(row: LabelledRow) -> str:
    parts = row.id.split(":")
    if len(parts) > 2 and parts[1] in ("out", "call"):
        return parts[2]
    if len(parts) > 3 and parts[1] == "traj":
        return parts[3]
    return (row.agent_role or "").removesuffix(" assistant")


def split_of(row: LabelledRow, definition: Mapping[str, Any]) -> str:
    """`train` or `validation` for one row under a split definition from `build_split`."""
    if row.source == "agentdojo":
        dojo = definition["agentdojo"]
        if agentdojo_suite(row) in dojo["held_suites"]:
            return VALIDATION
        if row.kind == "tool_output" and (
            row.category in dojo["held_output_attacks"] or row.tool in dojo["held_output_tools"]
        ):
            return VALIDATION
        return TRAIN
    if row.source in ("injecagent", "injecagent_runs"):
        injecagent = definition["injecagent"]
        family, user, attacker = injecagent_case(row.id)
        if user is not None and user in injecagent["held_user_cases"]:
            return VALIDATION
        if attack_type(row.category) in injecagent["held_attack_types"]:
            return VALIDATION
        held = injecagent["held_attacker_cases"].get(family or "", [])
        return VALIDATION if attacker is not None and attacker in held else TRAIN
    return VALIDATION if zlib.crc32(row.id.encode("utf-8")) % 4 == 0 else TRAIN
