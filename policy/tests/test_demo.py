"""The demo policy behaves as the README's first tour says."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from core.actors import Actor
from registry import services as registry_services
from registry.demo import load_demo_registry
from registry.models import Agent
from registry.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

FREEZE = {
    "account": "DE89370400440532013000",
    "amount": 2500,
    "currency": "EUR",
    "case_id": "CASE-000042",
    "reason": "Structuring on alert 981",
}


def test_the_tour_of_the_readme():
    load_demo_registry(UserFactory(username="demo-owner").username)
    agent = Agent.objects.get(slug="transaction-analysis")
    key = registry_services.credential_issue(actor=Actor.system("test"), agent=agent).key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")

    def ask(**changes):
        arguments = {**FREEZE, **changes}
        arguments = {k: v for k, v in arguments.items() if v is not None}
        body = {"tool": "payments.freeze_account", "arguments": arguments, "context": {"purpose": "alert 981"}}
        return client.post("/api/v1/tool-calls", body, format="json").json()

    allowed = ask()
    assert (allowed["decision"], allowed["reasons"], bool(allowed["decision_token"])) == ("allow", [], True)
    big = ask(amount=25000)
    assert (big["decision"], [r["code"] for r in big["reasons"]]) == ("escalate", ["rule_escalated"])
    shadow = [(result["name"], result["matched"]) for result in big["shadow"]]
    assert shadow == [("Planned: freezes over 5,000 EUR need a human", True)]
    dollars = ask(currency="USD")
    assert [(r["code"], r.get("pointer")) for r in dollars["reasons"]] == [("limit_exceeded", "/currency")]
    no_case = ask(case_id=None)
    assert (no_case["decision"], no_case["reasons"][0]["code"]) == ("deny", "schema_violation")
