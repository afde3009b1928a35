"""The demo guardian `make run` seeds next to the demo fleet: one watcher of every agent."""

from __future__ import annotations

from typing import Any

from core.actors import Actor
from guardian import services
from guardian.models import GUARDIAN_ROLE, Guardian
from registry import services as registry_services
from registry.choices import AgentStatus, ModelKind, RiskTier
from registry.models import Agent, Role, Tool

GUARDIAN_ROLE_SPEC = (GUARDIAN_ROLE, "Guardian", "Watches other agents' calls and outputs; may quarantine them.")
PRECHECK_TOOLS = ("email.send", "payments.freeze_account")


def load_demo_guardian(actor: Actor) -> None:
    role = Role.objects.filter(slug=GUARDIAN_ROLE).first()
    if role is None:
        slug, name, description = GUARDIAN_ROLE_SPEC
        role = registry_services.role_create(actor=actor, slug=slug, name=name, description=description)
    for tool in Tool.objects.filter(name__in=PRECHECK_TOOLS, guardian_precheck=False):
        registry_services.tool_update(actor=actor, tool=tool, guardian_precheck=True)
    if Agent.objects.filter(slug="fleet-guardian").exists():
        return
    orchestrator = Agent.objects.filter(slug="aml-orchestrator").select_related("owner").first()
    if orchestrator is None:
        return
    agent = registry_services.agent_create(
        actor=actor,
        slug="fleet-guardian",
        name="Fleet guardian",
        role=role,
        owner=orchestrator.owner,
        model_name="warden content + classifier scorers, warden-guardian SLM",
        model_kind=ModelKind.SLM,
        risk_tier=RiskTier.HIGH,
        team="Platform",
        description="Scores every agent's calls and tool outputs; quarantines an agent that turns against its task.",
    )
    registry_services.agent_transition(actor=actor, agent=agent, to=AgentStatus.ACTIVE)
    guardian = Guardian.objects.create(
        agent=agent,
        # The SLM (guardian/models/warden-guardian.gguf, scored after results in Celery) is advisory
        # here: on this AML fleet, a world its training data lacks, it judges some benign report
        # outputs unsafe (P ~0.95), so at 0.3 it shows its score and adds to strong evidence but
        # never flags, escalates or quarantines on its own or beside a weak classifier score.
        scorers={"content": 1.0, "classifier": 1.0, "slm": 0.3, "behaviour": 0.5},
        # A human is asked when the evidence is strong, the circuit breaker trips when it is
        # overwhelming (an injected instruction obeyed, a secret mailed to a stranger).
        flag_threshold=0.6,
        escalate_threshold=0.9,
        quarantine_threshold=0.97,
    )
    services.record_configuration(guardian, actor=actor, created=True)


def on_demo_registry_loaded(sender: Any, actor: Actor, **kwargs: Any) -> None:
    load_demo_guardian(actor)
