"""The demo fleet simulator against a live Warden: the agents act through the SDK over HTTP, the
guardian quarantines the agent that read the injected output, and the loop guard stops the looping one.

The live server runs in this process with Celery eager (test settings), so the guardian scores a
reported result before the report's response returns, as a worker would a moment later.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from guardian.models import Quarantine
from policy.models import ToolCall
from registry.choices import AgentStatus
from registry.demo import load_demo_registry
from registry.models import Agent, Credential
from simulator.fleet import KEY_NAME, Simulation, prepare_agents

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo_fleet(transactional_db: None) -> dict[str, str]:
    owner = get_user_model().objects.create_user(username="demo-owner", password="demo-password-1", is_staff=True)
    load_demo_registry(owner.username)
    return prepare_agents()


def test_the_fleet_works_the_guardian_quarantines_and_the_loop_guard_stops(
    demo_fleet: dict[str, str], live_server: Any
):
    simulation = Simulation(live_server.url, demo_fleet, seed=7, injection_after=2.0, loop_after=3.5)
    events = simulation.run(duration=6.0, rate=8.0)

    outcomes = Counter(event.decision for event in events)
    assert outcomes["allow"] >= 10, outcomes
    assert outcomes["deny"] >= 2, outcomes
    # The injection: the guardian quarantined alert triage, and its exfiltration attempt was refused.
    analyst = Agent.objects.get(slug="alert-triage")
    assert analyst.status == AgentStatus.QUARANTINED
    quarantine = Quarantine.objects.get(agent=analyst)
    assert quarantine.guardian is not None
    exfiltration = ToolCall.objects.get(agent=analyst, tool="email.send")
    assert exfiltration.decision == "deny"
    assert any(event.decision == "quarantined" for event in events)
    # The loop: denied loop_detected, and the agent stopped.
    looped = [
        call
        for call in ToolCall.objects.filter(agent__slug="customer-service")
        if "loop_detected" in call.reason_codes()
    ]
    assert looped
    assert any(event.decision == "stopped" for event in events)
    # Every allowed call reported its result.
    assert not ToolCall.objects.filter(decision="allow", escalated=False, result_reported_at__isnull=True).exists()


def test_a_new_run_revokes_the_previous_runs_keys(demo_fleet: dict[str, str]):
    prepare_agents()
    live = Credential.objects.filter(name=KEY_NAME, revoked_at__isnull=True)
    assert live.count() == 4
    assert Credential.objects.filter(name=KEY_NAME).count() == 8


def test_the_command_says_when_the_demo_registry_is_missing(live_server: Any):
    with pytest.raises(CommandError, match="demo registry is not loaded"):
        call_command("simulate", "--url", live_server.url, "--duration", "1", "--wait", "5")


def test_the_command_says_when_warden_does_not_answer(db: None):
    with pytest.raises(CommandError, match="did not answer"):
        call_command("simulate", "--url", "http://127.0.0.1:9", "--duration", "1", "--wait", "0")
