"""Factories for registry objects. They create through `registry.services`, like real callers.

A factory that called `.save()` directly would leave "saved outside a service" records and
skip the services' validation, so tests would not see the registry as it really is.
"""

from __future__ import annotations

from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from core.actors import Actor
from registry import services
from registry.choices import AgentStatus
from registry.models import Agent, Grant, Role, Tool

FACTORY_ACTOR = Actor.system("factory")
PASSWORD = "test-password-123"

# How a draft agent reaches each status through legal moves (with a reason where needed).
STATUS_PATHS: dict[str, tuple[str, ...]] = {
    AgentStatus.DRAFT: (),
    AgentStatus.ACTIVE: (AgentStatus.ACTIVE,),
    AgentStatus.SUSPENDED: (AgentStatus.ACTIVE, AgentStatus.SUSPENDED),
    AgentStatus.QUARANTINED: (AgentStatus.ACTIVE, AgentStatus.QUARANTINED),
    AgentStatus.RETIRED: (AgentStatus.RETIRED,),
}


class UserFactory(factory.django.DjangoModelFactory):
    """A staff user (Warden's humans all use the admin) with a known password, in `groups`."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    is_staff = True

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        password = kwargs.pop("password", PASSWORD)
        return model_class._default_manager.create_user(*args, password=password, **kwargs)

    @factory.post_generation
    def groups(self, create: bool, names: Any, **kwargs: Any) -> None:
        if create and names:
            self.groups.add(*[Group.objects.get(name=name) for name in names])


class RoleFactory(factory.Factory):
    """A role created with `services.role_create`."""

    class Meta:
        model = Role

    slug = factory.Sequence(lambda n: f"role-{n}")
    name = factory.LazyAttribute(lambda role: role.slug.replace("-", " ").title())
    description = ""

    @classmethod
    def _create(cls, model_class: Any, *args: Any, actor: Actor = FACTORY_ACTOR, **kwargs: Any) -> Role:
        return services.role_create(actor=actor, **kwargs)


class AgentFactory(factory.Factory):
    """An agent created with `services.agent_create`, then moved to `status` through legal transitions."""

    class Meta:
        model = Agent

    slug = factory.Sequence(lambda n: f"agent-{n}")
    name = factory.LazyAttribute(lambda agent: agent.slug.replace("-", " ").title())
    owner = factory.SubFactory(UserFactory)
    model_name = "granite-3.1-2b"
    status = AgentStatus.DRAFT

    @classmethod
    def _create(
        cls, model_class: Any, *args: Any, actor: Actor = FACTORY_ACTOR, status: str = AgentStatus.DRAFT, **kwargs: Any
    ) -> Agent:
        agent = services.agent_create(actor=actor, **kwargs)
        for step in STATUS_PATHS[status]:
            agent = services.agent_transition(actor=actor, agent=agent, to=step, reason="Set up by a test.")
        return agent


class ToolFactory(factory.Factory):
    """A tool registered with `services.tool_create` (or the existing one of that name)."""

    class Meta:
        model = Tool

    name = factory.Sequence(lambda n: f"tools.tool_{n}")
    description = ""

    @classmethod
    def _create(cls, model_class: Any, *args: Any, actor: Actor = FACTORY_ACTOR, **kwargs: Any) -> Tool:
        existing = Tool.objects.filter(name=kwargs["name"]).first()
        return existing or services.tool_create(actor=actor, **kwargs)


def register_tools(*names: str) -> list[Tool]:
    """Make sure tools with these names are registered."""
    tools: list[Tool] = [ToolFactory.create(name=name) for name in names]
    return tools


class GrantFactory(factory.Factory):
    """A grant created with `services.grant_create` (to an agent unless `role` is given)."""

    class Meta:
        model = Grant

    agent = factory.SubFactory(AgentFactory)
    role = None
    tool = factory.Sequence(lambda n: f"tools.tool_{n}")
    constraints = factory.LazyFunction(dict)
    reason = "Needed by a test."

    @classmethod
    def _create(cls, model_class: Any, *args: Any, actor: Actor = FACTORY_ACTOR, **kwargs: Any) -> Grant:
        if isinstance(kwargs["tool"], str):
            kwargs["tool"] = ToolFactory(name=kwargs["tool"])
        return services.grant_create(actor=actor, **kwargs)

    @classmethod
    def for_role(cls, role: Role | None = None, **kwargs: Any) -> Grant:
        """A grant to a role (a new one unless given) instead of an agent."""
        grant: Grant = cls.create(agent=None, role=role or RoleFactory(), **kwargs)
        return grant
