"""Property tests: a scope Warden does not understand is refused, never stored; a valid one round-trips.

The oracle below restates the scope rules of shared/DESIGN.md in plain Python, independently of
the JSON Schema the registry validates with, so a hole in the schema shows up as a failure.
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.actors import Actor
from registry import services
from registry.models import Agent

pytestmark = pytest.mark.django_db

KEYS = ("data_domains", "environments", "max_delegation_depth")
MOST_ITEMS = {"data_domains": 64, "environments": 16}
NAME = re.compile(r"[a-z0-9][a-z0-9_.-]*")


def is_name(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 64 and NAME.fullmatch(value) is not None


def is_valid_scope(value: Any) -> bool:
    """The scope rules: exactly three keys, lists of unique lower-case names, a depth from 0 to 8."""
    if not isinstance(value, dict) or set(value) != set(KEYS):
        return False
    for key, most in MOST_ITEMS.items():
        items = value[key]
        if not isinstance(items, list) or len(items) > most or not all(is_name(item) for item in items):
            return False
        if len(set(items)) != len(items):
            return False
    depth = value["max_delegation_depth"]
    if isinstance(depth, bool) or not isinstance(depth, int | float):
        return False
    if isinstance(depth, float) and not (math.isfinite(depth) and depth.is_integer()):
        return False  # JSON Schema counts 2.0 as an integer, 2.5 not
    return 0 <= depth <= 8


names = st.from_regex(r"\A[a-z0-9][a-z0-9_.-]{0,20}\Z", fullmatch=True)
bad_names = st.one_of(
    names.map(lambda name: name + "\n"),  # `$` in a Python regex accepts one trailing newline
    names.map(lambda name: name.upper() + "X"),
    names.map(lambda name: "-" + name),
    names.map(lambda name: name + " "),
    st.just(""),
    st.just("a" * 65),
    st.integers(),
    st.none(),
    st.text(max_size=8),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
depths = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.floats(min_value=-2, max_value=10, allow_nan=False),
    st.booleans(),
    st.text(max_size=2),
    st.none(),
)


@st.composite
def near_scopes(draw: st.DrawFn) -> Any:
    """Scopes that are valid, or broken in one or a few small ways (the interesting boundary)."""
    scope: dict[str, Any] = {
        "data_domains": draw(st.lists(names, max_size=5, unique=True)),
        "environments": draw(st.lists(names, max_size=5, unique=True)),
        "max_delegation_depth": draw(st.integers(min_value=0, max_value=8)),
    }
    mutations = draw(st.lists(st.sampled_from(["bad_item", "duplicate", "depth", "drop", "extra", "type"]), max_size=2))
    for mutation in mutations:
        key = draw(st.sampled_from(KEYS[:2]))
        items = scope.get(key)
        if mutation == "bad_item" and isinstance(items, list):
            scope[key] = [*items, draw(bad_names)]
        elif mutation == "duplicate" and isinstance(items, list) and items:
            scope[key] = [*items, items[0]]
        elif mutation == "depth":
            scope["max_delegation_depth"] = draw(depths)
        elif mutation == "drop":
            scope.pop(draw(st.sampled_from(KEYS)), None)
        elif mutation == "extra":
            scope[draw(st.text(min_size=1, max_size=12))] = draw(json_values)
        elif mutation == "type":
            scope[draw(st.sampled_from(KEYS))] = draw(json_values)
    return scope


def _create(owner: Any, scope: Any) -> Agent:
    return services.agent_create(
        actor=Actor.system("property-test"),
        slug=f"agent-{uuid.uuid4().hex[:12]}",
        name="Property",
        owner=owner,
        model_name="m",
        scope=scope,
    )


def _check(owner: Any, scope: Any) -> None:
    with transaction.atomic():
        if is_valid_scope(scope):
            agent = _create(owner, scope)
            assert Agent.objects.get(pk=agent.pk).scope == scope
        else:
            with pytest.raises(ValidationError) as error:
                _create(owner, scope)
            assert "scope" in error.value.message_dict, error.value
            assert not Agent.objects.exists()
        transaction.set_rollback(True)


PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@PROPERTY_SETTINGS
@given(scope=json_values)
def test_arbitrary_json_is_never_silently_accepted_as_a_scope(owner, scope):
    _check(owner, scope)


@PROPERTY_SETTINGS
@given(scope=near_scopes())
def test_scopes_near_the_rules_are_decided_like_the_rules(owner, scope):
    _check(owner, scope)


@PROPERTY_SETTINGS
@given(
    scope=st.fixed_dictionaries(
        {
            "data_domains": st.lists(names, max_size=64, unique=True),
            "environments": st.lists(names, max_size=16, unique=True),
            "max_delegation_depth": st.integers(min_value=0, max_value=8),
        }
    )
)
def test_valid_scopes_round_trip(owner, scope):
    assert is_valid_scope(scope)
    _check(owner, scope)


@pytest.mark.parametrize(
    "scope",
    [
        {"data_domains": ["alerts\n"], "environments": [], "max_delegation_depth": 0},
        {"data_domains": [], "environments": ["prod"], "max_delegation_depth": True},
        {"data_domains": [], "environments": [], "max_delegation_depth": 2.5},
    ],
)
def test_known_edge_cases_are_refused(owner, scope):
    assert not is_valid_scope(scope)
    _check(owner, scope)
