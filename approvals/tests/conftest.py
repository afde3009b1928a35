"""Fixtures for approval tests: a live policy whose rule escalates payments over 1,000 EUR."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from policy import services as policy_services
from policy.models import Rule
from policy.tests.builders import VALID_PAYMENT
from policy.tests.conftest import LivePolicy, live_policy  # noqa: F401  (fixture)


@dataclass
class Escalating:
    policy: LivePolicy
    rule: Rule

    @property
    def agent(self) -> Any:
        return self.policy.agent

    def client(self) -> APIClient:
        return self.policy.client()

    def ask(self, **arguments: Any) -> dict[str, Any]:
        """The agent asks to pay; returns the decision document."""
        response = self.client().post(
            "/api/v1/tool-calls",
            {"tool": "payments.transfer", "arguments": {**VALID_PAYMENT, "amount": 2000, **arguments}},
            format="json",
        )
        assert response.status_code == 200, response.content
        return response.json()


@pytest.fixture
def escalating(live_policy: LivePolicy) -> Escalating:  # noqa: F811
    """Agent `payer` may pay up to 5,000 EUR; a rule escalates anything over 1,000 EUR to a human."""
    rule = policy_services.rule_create(
        actor=live_policy.actor,
        name="big payments need a human",
        expression="args.amount > 1000",
        effect="escalate",
        message="Payments over 1,000 EUR need a human.",
    )
    return Escalating(policy=live_policy, rule=rule)


@pytest.fixture
def second_approver(db: None) -> Any:
    from core.groups import APPROVERS
    from registry.tests.factories import UserFactory

    return UserFactory(username="second-approver", email="second@example.org", groups=[APPROVERS])


def restore_approvers_group() -> None:
    """Transactional tests flush the tables, groups included: give `approvers` back what the migration gives it."""
    from django.contrib.auth.models import Group, Permission

    from core.groups import APPROVERS

    group, _ = Group.objects.get_or_create(name=APPROVERS)
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="approvals", codename__startswith="view_"),
        Permission.objects.get(content_type__app_label="approvals", codename="decide_approval"),
    )


@pytest.fixture
def tx_approvers(transactional_db: None) -> tuple[Any, Any]:
    """Two approvers for tests that use real transactions (threads)."""
    from core.groups import APPROVERS
    from registry.tests.factories import UserFactory

    restore_approvers_group()
    return (
        UserFactory(username="approver", groups=[APPROVERS]),
        UserFactory(username="second-approver", groups=[APPROVERS]),
    )
