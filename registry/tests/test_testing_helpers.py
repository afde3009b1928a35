"""`core.testing.assert_change_record` fails when it should, so tests built on it can fail."""

from __future__ import annotations

import pytest

from core.testing import assert_change_record
from registry.choices import ChangeAction
from registry.tests.factories import AgentFactory


@pytest.mark.django_db
def test_assert_change_record_checks_count_and_actor(actor):
    agent = AgentFactory()  # created by the factory's actor
    record = assert_change_record(agent, ChangeAction.AGENT_CREATED)
    assert record.action == ChangeAction.AGENT_CREATED
    with pytest.raises(AssertionError):
        assert_change_record(agent, ChangeAction.AGENT_CREATED, actor=actor)
    with pytest.raises(AssertionError):
        assert_change_record(agent, ChangeAction.AGENT_CREATED, count=2)
    with pytest.raises(AssertionError):
        assert_change_record(agent, ChangeAction.AGENT_UPDATED)
    assert assert_change_record(agent, ChangeAction.AGENT_UPDATED, count=0) == []
