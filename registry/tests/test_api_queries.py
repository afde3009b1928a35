"""List and detail endpoints run a fixed number of queries, however many rows they show."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry import services
from registry.choices import AgentStatus
from registry.tests.factories import AgentFactory, GrantFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, response.content
    return len(captured)


def _add_agents(count: int, actor) -> None:
    """Agents with everything a list row shows: owner, role, supervisor, grants, keys."""
    supervisor = AgentFactory()
    for _ in range(count):
        agent = AgentFactory(owner=UserFactory(), role=RoleFactory(), supervisor=supervisor, status=AgentStatus.ACTIVE)
        GrantFactory(agent=agent)
        GrantFactory.for_role(agent.role)
        services.credential_issue(actor=actor, agent=agent)


def _add_credentials(count: int, actor) -> None:
    agent = AgentFactory()
    for _ in range(count):
        old = services.credential_issue(actor=actor, agent=agent, name="k")
        services.credential_rotate(actor=actor, credential=old.credential)  # rows with `replaced_by`


LISTS: list[tuple[str, Callable[..., None]]] = [
    ("/api/v1/agents", _add_agents),
    ("/api/v1/roles", _add_agents),
    ("/api/v1/grants", _add_agents),
    ("/api/v1/credentials", _add_credentials),
]


@pytest.mark.parametrize(("url", "add_rows"), LISTS, ids=[url for url, _ in LISTS])
def test_list_query_count_does_not_grow_with_rows(admin_api, actor, url, add_rows):
    add_rows(3, actor)
    _queries(admin_api, url)  # warm the permission cache of the forced user
    with_few = _queries(admin_api, url)
    add_rows(27, actor)
    with_many = _queries(admin_api, url)
    assert with_many == with_few, f"{url}: {with_few} queries for a few rows, {with_many} for many"
    assert with_many <= 4  # the page, its count, and nothing per row


def test_agent_detail_queries_are_bounded(admin_api, django_assert_max_num_queries, actor):
    role = RoleFactory()
    agent = AgentFactory(role=role)
    for index in range(10):
        GrantFactory(agent=agent, tool=f"own.tool_{index}")
        GrantFactory.for_role(role, tool=f"role.tool_{index}")
    admin_api.get(f"/api/v1/agents/{agent.pk}")
    with django_assert_max_num_queries(4):
        response = admin_api.get(f"/api/v1/agents/{agent.pk}")
    assert len(response.json()["authority"]) == 20
    with django_assert_max_num_queries(4):
        assert len(admin_api.get(f"/api/v1/agents/{agent.pk}/card").json()["skills"]) == 20


def test_history_query_count_is_flat(admin_api, actor):
    agent = AgentFactory()
    url = f"/api/v1/agents/{agent.pk}/history"
    _queries(admin_api, url)
    few = _queries(admin_api, url)
    for index in range(20):
        services.agent_update(actor=actor, agent=agent, description=f"v{index}")
    assert _queries(admin_api, url) == few
