"""Actors: who a change is recorded as."""

from __future__ import annotations

import dataclasses

import pytest
from django.contrib.auth.models import AnonymousUser, User

from core.actors import Actor


def test_system_actor_names_the_os_user():
    actor = Actor.system("nightly-expiry")
    assert (actor.kind, actor.id) == ("system", "nightly-expiry")
    assert actor.label.startswith("nightly-expiry (os user ")
    assert Actor.system("nightly-expiry") == actor


def test_user_actor():
    user = User(pk=7, username="alice")
    assert Actor.from_user(user).as_dict() == {"kind": "user", "id": "7", "label": "alice"}


def test_anonymous_user_cannot_act():
    with pytest.raises(ValueError, match="anonymous"):
        Actor.from_user(AnonymousUser())


def test_agent_actor():
    class FakeAgent:
        pk = "0b9f"
        slug = "triage"

    assert Actor.from_agent(FakeAgent()) == Actor(kind="agent", id="0b9f", label="triage")


def test_actors_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Actor.system("x").id = "y"  # type: ignore[misc]
