"""Agents authenticate with `Authorization: Bearer <agent key>`, checked against the cached snapshot."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from core.errors import AuthenticationFailed
from policy.decisions import AgentPrincipal, authenticate_key

REALM = 'Bearer realm="warden"'


def principal_from_authorization(header: str) -> AgentPrincipal | None:
    """The agent behind an `Authorization: Bearer <key>` value; None for another scheme (or none)."""
    parts = header.split()
    if not parts or parts[0].lower() != "bearer":
        return None
    if len(parts) != 2:
        raise AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.", detail={"reason": "malformed"})
    return authenticate_key(parts[1])


class AgentKeyAuthentication(BaseAuthentication):
    """Bearer agent keys (`wdn_<prefix>_<secret>`); other schemes are left to the next class."""

    def authenticate(self, request: Request) -> tuple[AgentPrincipal, str] | None:
        principal = principal_from_authorization(get_authorization_header(request).decode("latin-1"))
        return None if principal is None else (principal, principal.prefix)

    def authenticate_header(self, request: Request) -> str:
        return REALM


class IsAgent(BasePermission):
    """Only an authenticated agent (not a human) may call this endpoint."""

    message = "Only agents may call this endpoint: authenticate with 'Authorization: Bearer <agent key>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(getattr(request.user, "is_agent", False))
