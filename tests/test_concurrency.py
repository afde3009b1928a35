"""Concurrent writers: exactly one change wins and exactly one change record is written.

Runs on PostgreSQL, where services lock rows with SELECT ... FOR UPDATE. (SQLite serialises
every write transaction, so the race cannot happen there; CI runs this file on PostgreSQL.)
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections

from core.actors import Actor
from core.errors import Conflict, IllegalTransition
from registry import services
from registry.choices import AgentStatus, ChangeAction
from registry.models import ChangeRecord, Credential

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks are exercised on PostgreSQL"),
]
ACTOR = Actor.system("test")
THREADS = 8


def _race(work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run `work(i)` in THREADS threads released at the same moment."""
    barrier = threading.Barrier(THREADS)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait()
            outcome = work(index)
            with lock:
                results.append(outcome)
        except BaseException as error:  # collected and asserted on by the test
            with lock:
                errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results, errors


@pytest.fixture
def agent():
    owner = get_user_model().objects.create_user("owner", is_staff=True)
    agent = services.agent_create(actor=ACTOR, slug="racer", name="Racer", owner=owner, model_name="m")
    return services.agent_transition(actor=ACTOR, agent=agent, to=AgentStatus.ACTIVE)


def test_concurrent_suspensions_one_wins(agent):
    results, errors = _race(lambda _: services.agent_transition(actor=ACTOR, agent=agent, to=AgentStatus.SUSPENDED))
    assert len(results) == 1
    assert len(errors) == THREADS - 1
    assert all(isinstance(error, IllegalTransition) for error in errors)
    changes = ChangeRecord.objects.filter(agent=agent, action=ChangeAction.AGENT_STATUS_CHANGED)
    assert [record.after["status"] for record in changes] == ["suspended", "active"]


def test_concurrent_rotations_of_one_key_issue_one_replacement(agent):
    issued = services.credential_issue(actor=ACTOR, agent=agent, name="prod")
    results, errors = _race(lambda _: services.credential_rotate(actor=ACTOR, credential=issued.credential))
    assert len(results) == 1
    assert all(isinstance(error, Conflict) for error in errors)
    assert Credential.objects.filter(agent=agent).count() == 2
    assert ChangeRecord.objects.filter(action=ChangeAction.CREDENTIAL_ROTATED).count() == 1


def test_concurrent_updates_are_each_recorded_once(agent):
    results, errors = _race(
        lambda index: services.agent_update(actor=ACTOR, agent=agent, description=f"writer {index}")
    )
    assert not errors
    assert len(results) == THREADS
    updates = ChangeRecord.objects.filter(agent=agent, action=ChangeAction.AGENT_UPDATED).order_by("id")
    assert updates.count() == THREADS
    # Each update saw the previous one's result: the before/after chain has no gaps.
    chain = [(record.before["description"], record.after["description"]) for record in updates]
    for (_, previous_after), (next_before, _) in itertools.pairwise(chain):
        assert next_before == previous_after
