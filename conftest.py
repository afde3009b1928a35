"""Shared fixtures: an actor, humans in each of Warden's groups, and API clients for each."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from core.actors import Actor
from core.groups import APPROVERS, AUDITORS, VIEWERS, WARDEN_ADMINS


@pytest.fixture(autouse=True)
def _fresh_policy_cache() -> Any:
    """Each test decides with a snapshot of its own database: rolled-back tests reuse revision numbers."""
    from policy import counters, snapshots

    snapshots.reset()
    counters.reset()
    yield
    snapshots.reset()


@pytest.fixture
def actor() -> Actor:
    """The system actor services are called with in tests."""
    return Actor.system("test")


def _user(**kwargs: Any) -> Any:
    from registry.tests.factories import UserFactory

    return UserFactory(**kwargs)


@pytest.fixture
def warden_admin(db: None) -> Any:
    """A staff user in warden-admins: may view, add, change and delete registry objects."""
    return _user(username="warden-admin", groups=[WARDEN_ADMINS])


@pytest.fixture
def approver(db: None) -> Any:
    """A staff user in approvers: reads the registry."""
    return _user(username="approver", groups=[APPROVERS])


@pytest.fixture
def viewer(db: None) -> Any:
    """A staff user in viewers: reads the registry, changes nothing."""
    return _user(username="viewer", groups=[VIEWERS])


@pytest.fixture
def auditor(db: None) -> Any:
    """A staff user in auditors: reads and verifies the audit trail, changes nothing."""
    return _user(username="auditor", groups=[AUDITORS])


@pytest.fixture
def groupless_user(db: None) -> Any:
    """A staff user in no group: may log in, sees nothing."""
    return _user(username="groupless")


@pytest.fixture
def non_staff_user(db: None) -> Any:
    """A warden-admins member who is not staff: refused everywhere."""
    return _user(username="non-staff", is_staff=False, groups=[WARDEN_ADMINS])


@pytest.fixture
def superuser(db: None) -> Any:
    """A Django superuser (holds every permission without a group)."""
    return _user(username="root", is_superuser=True)


@pytest.fixture
def owner(db: None) -> Any:
    """A human sponsor for agents (a plain staff user)."""
    return _user(username="owner")


def _client_for(user: Any | None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


@pytest.fixture
def anon_api() -> APIClient:
    """An API client with no credentials."""
    return APIClient()


@pytest.fixture
def admin_api(warden_admin: Any) -> APIClient:
    """An API client authenticated as a warden-admins member."""
    return _client_for(warden_admin)


@pytest.fixture
def approver_api(approver: Any) -> APIClient:
    return _client_for(approver)


@pytest.fixture
def viewer_api(viewer: Any) -> APIClient:
    return _client_for(viewer)


@pytest.fixture
def auditor_api(auditor: Any) -> APIClient:
    return _client_for(auditor)


@pytest.fixture
def groupless_api(groupless_user: Any) -> APIClient:
    return _client_for(groupless_user)


@pytest.fixture
def non_staff_api(non_staff_user: Any) -> APIClient:
    return _client_for(non_staff_user)


@pytest.fixture
def superuser_api(superuser: Any) -> APIClient:
    return _client_for(superuser)


@pytest.fixture
def admin_client_su(client: Any, superuser: Any) -> Any:
    """Django's test client logged in to the admin as the superuser."""
    client.force_login(superuser)
    return client


# Tool names the tests grant; grants may only name registered tools.
KNOWN_TOOLS = ("crm.read", "crm.write", "payments.transfer", "aml.alerts.read", "email.send")


@pytest.fixture
def known_tools(db: None) -> list[Any]:
    """The tools in KNOWN_TOOLS, registered."""
    from registry.tests.factories import register_tools

    return register_tools(*KNOWN_TOOLS)
