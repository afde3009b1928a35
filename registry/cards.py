"""The agent as an A2A Agent Card, with Warden's governance extension.

Plain A2A cards say what an agent can do; they do not say who answers for it or what it is
allowed to do. The `warden` extension (declared in `capabilities.extensions`, as A2A
prescribes for extensions) adds owner, role, authority, scope, risk tier and status.
"""

from __future__ import annotations

from typing import Any

from core.conf import warden_settings
from registry.models import Agent
from registry.selectors import agent_authority

A2A_PROTOCOL_VERSION = "1.0"
WARDEN_EXTENSION_URI = "https://warden.dev/a2a/extensions/governance/v1"


def agent_card(agent: Agent) -> dict[str, Any]:
    """Build the card for one agent from the registry (skills are its current grants)."""
    authority = agent_authority(agent)
    skills = [
        {
            "id": item.grant.tool_id,
            "name": item.grant.tool_id,
            "description": item.grant.reason or f"May call {item.grant.tool_id}.",
            "tags": sorted({item.grant.tool_id.split(".")[0], f"granted-via-{item.source}"}),
            "inputModes": ["application/json"],
            "outputModes": ["application/json"],
        }
        for item in authority
    ]
    interfaces = (
        [{"url": agent.endpoint_url, "protocolBinding": "JSONRPC", "protocolVersion": A2A_PROTOCOL_VERSION}]
        if agent.endpoint_url
        else []
    )
    return {
        "name": agent.name,
        "description": agent.description or agent.name,
        "version": agent.version,
        "supportedInterfaces": interfaces,
        "provider": {
            "organization": warden_settings.ORGANIZATION_NAME,
            "url": warden_settings.ORGANIZATION_URL,
        },
        "capabilities": {
            "streaming": False,
            "pushNotifications": False,
            "extensions": [
                {
                    "uri": WARDEN_EXTENSION_URI,
                    "description": "Governance facts recorded by Warden: owner, authority, scope, risk, status.",
                    "required": False,
                    "params": _warden_extension(agent, authority),
                }
            ],
        },
        "defaultInputModes": ["application/json"],
        "defaultOutputModes": ["application/json"],
        "skills": skills,
    }


def _warden_extension(agent: Agent, authority: list[Any]) -> dict[str, Any]:
    return {
        "agent_id": str(agent.pk),
        "slug": agent.slug,
        "owner": {"username": agent.owner.get_username(), "email": agent.owner.email or None},
        "team": agent.team or None,
        "role": {"slug": agent.role.slug, "name": agent.role.name} if agent.role else None,
        "status": agent.status,
        "risk_tier": agent.risk_tier,
        "scope": agent.scope,
        "model": {"name": agent.model_name, "kind": agent.model_kind, "version": agent.model_version or None},
        "supervisor": agent.supervisor.slug if agent.supervisor else None,
        "authority": [
            {
                "tool": item.grant.tool_id,
                "granted_via": item.source,
                "constraints": item.grant.constraints,
                "rate_limit_per_minute": item.grant.rate_limit_per_minute,
                "valid_from": item.grant.valid_from.isoformat() if item.grant.valid_from else None,
                "valid_until": item.grant.valid_until.isoformat() if item.grant.valid_until else None,
            }
            for item in authority
        ],
    }
