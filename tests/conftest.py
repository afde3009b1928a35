"""Fixtures for the end-to-end tests: a superuser who logs in with a password, a seeded registry.

Everything is created through `registry.services` (with a system actor), like real callers do,
so the change history is the one a real installation would have.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from core.actors import Actor
from registry import services
from registry.choices import AgentStatus, RiskTier
from registry.models import Agent, Credential, Grant, Role, Tool

E2E_PASSWORD = "e2e-correct-horse-battery"
ARTIFACTS_DIR = Path(settings.BASE_DIR) / "var" / "artifacts"
ROOT = Path(settings.BASE_DIR)


@dataclass
class SeededRegistry:
    """The objects `seeded_registry` created, so tests can name real ids in URLs."""

    owner: Any
    roles: list[Role] = field(default_factory=list)
    agents: list[Agent] = field(default_factory=list)
    grants: list[Grant] = field(default_factory=list)
    credentials: list[Credential] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # credential prefix -> plaintext key


@pytest.fixture
def system_actor() -> Actor:
    """The actor the end-to-end tests create their data with."""
    return Actor.system("test")


@pytest.fixture
def e2e_superuser(transactional_db: None) -> Any:
    """A staff superuser with a known password (the browser and HTTP Basic need one)."""
    return get_user_model().objects.create_superuser(
        username="e2e-admin", email="e2e-admin@example.com", password=E2E_PASSWORD
    )


@pytest.fixture
def e2e_owner(transactional_db: None) -> Any:
    """A human sponsor for the seeded agents."""
    return get_user_model().objects.create_user(
        username="fleet-owner", email="fleet-owner@example.com", password=E2E_PASSWORD, is_staff=True
    )


@pytest.fixture
def seeded_registry(transactional_db: None, system_actor: Actor, e2e_owner: Any) -> SeededRegistry:
    """Two roles, agents in several statuses with own and role grants, and active keys."""
    seeded = SeededRegistry(owner=e2e_owner)
    for name, side_effect in [("payments.transfer", "financial"), ("crm.read_contact", "read"), ("files.read", "read")]:
        if not Tool.objects.filter(name=name).exists():  # another fixture may have registered it
            services.tool_create(actor=system_actor, name=name, side_effect=side_effect)
    clerk = services.role_create(actor=system_actor, slug="payments-clerk", name="Payments clerk")
    reader = services.role_create(actor=system_actor, slug="crm-reader", name="CRM reader")
    unused = services.role_create(actor=system_actor, slug="unused-role", name="Unused role")  # deletable
    seeded.roles += [clerk, reader, unused]
    seeded.grants.append(
        services.grant_create(
            actor=system_actor,
            role=clerk,
            tool="payments.transfer",
            constraints={"amount": {"maximum": 1000}, "currency": {"enum": ["EUR"]}},
            rate_limit_per_minute=10,
            reason="Clerks pay approved invoices.",
        )
    )
    seeded.grants.append(
        services.grant_create(actor=system_actor, role=reader, tool="crm.read_contact", reason="Look up customers.")
    )
    profiles = [
        ("invoice-bot", "Invoice bot", clerk, RiskTier.HIGH, AgentStatus.ACTIVE),
        ("support-bot", "Support bot", reader, RiskTier.LOW, AgentStatus.ACTIVE),
        ("draft-bot", "Draft bot", None, RiskTier.MEDIUM, AgentStatus.DRAFT),
        ("paused-bot", "Paused bot", reader, RiskTier.CRITICAL, AgentStatus.SUSPENDED),
    ]
    for slug, name, role, tier, status in profiles:
        agent = services.agent_create(
            actor=system_actor,
            slug=slug,
            name=name,
            owner=e2e_owner,
            role=role,
            risk_tier=tier,
            model_name="granite-3.1-2b",
            scope={"data_domains": ["invoices"], "environments": ["staging"], "max_delegation_depth": 1},
        )
        seeded.grants.append(
            services.grant_create(
                actor=system_actor,
                agent=agent,
                tool="files.read",
                constraints={"path": {"pattern": "^/srv/shared/"}},
                valid_until=timezone.now() + dt.timedelta(days=30),
                reason="Reads shared documents.",
            )
        )
        for step in {AgentStatus.ACTIVE: ["active"], AgentStatus.SUSPENDED: ["active", "suspended"]}.get(status, []):
            agent = services.agent_transition(actor=system_actor, agent=agent, to=step)
        issued = services.credential_issue(actor=system_actor, agent=agent, name="production")
        seeded.agents.append(agent)
        seeded.credentials.append(issued.credential)
        seeded.keys[issued.credential.prefix] = issued.key
    return seeded


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where end-to-end tests leave screenshots and reports (var/ is not committed)."""
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS_DIR


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    """A database of the test's own that other processes can share: a SQLite file, or a fresh
    PostgreSQL database when DATABASE_URL points at PostgreSQL (dropped afterwards)."""
    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith("postgres"):
        yield f"sqlite:///{tmp_path / 'propagation.sqlite3'}"
        return
    import psycopg

    name = f"warden_propagation_{uuid.uuid4().hex[:8]}"
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_broker() -> Iterator[str]:
    """The Redis broker worker tests use (CELERY_BROKER_URL, or database 15), emptied before and after.

    Skipped where no Redis answers, except in CI, which starts one.
    """
    import redis

    configured = os.environ.get("CELERY_BROKER_URL", "")
    url = configured if configured.startswith("redis") else "redis://127.0.0.1:6379/15"
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"Redis is not reachable at {url}: {error}")
    client.flushdb()
    yield url
    client.flushdb()


def start_worker(env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`celery -A config worker` with `env`, its output in `log`; returns once it says it is ready."""
    with log.open("w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel=INFO", *extra],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killing it kills its pool children too
        )
    ready = time.monotonic() + 60
    while " ready." not in log.read_text() and time.monotonic() < ready and worker.poll() is None:
        time.sleep(0.2)
    assert " ready." in log.read_text(), log.read_text()[-3000:]
    return worker
