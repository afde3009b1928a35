"""Fixtures for policy tests: a small live policy in the database and an agent with a key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from core.actors import Actor
from policy import services
from policy.models import ContractVersion
from policy.tests.builders import PAYMENT_SCHEMA
from registry import services as registry_services
from registry.choices import AgentStatus
from registry.models import Agent
from registry.tests.factories import AgentFactory, ToolFactory


@dataclass
class LivePolicy:
    agent: Agent
    key: str
    contract: ContractVersion
    actor: Actor

    def client(self, key: str | None = None) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {key or self.key}")
        return client


@pytest.fixture
def live_policy(db: None) -> LivePolicy:
    """Agent `payer` (active, with a key) granted payments.transfer (max 5,000 EUR) under PAYMENT_SCHEMA."""
    actor = Actor.system("test")
    tool = ToolFactory(name="payments.transfer", side_effect="financial", default_risk="high")
    contract = services.contract_create(
        actor=actor, tool=tool, input_schema=PAYMENT_SCHEMA, output_schema=OUTPUT_SCHEMA, activate=True
    )
    agent = AgentFactory(slug="payer", status=AgentStatus.ACTIVE)
    registry_services.grant_create(
        actor=actor,
        agent=agent,
        tool="payments.transfer",
        constraints={"amount": {"maximum": 5000}},
        rate_limit_per_minute=100,
        reason="Pays invoices.",
    )
    issued = registry_services.credential_issue(actor=actor, agent=agent)
    return LivePolicy(agent=agent, key=issued.key, contract=contract, actor=actor)


OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["transfer_id", "status"],
    "properties": {"transfer_id": {"type": "string"}, "status": {"enum": ["booked", "pending"]}},
}
