"""Agents authenticate with `Authorization: Bearer <agent key>`, checked against the cached snapshot."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from policy.decisions import AgentPrincipal, authenticate_key


class AgentKeyAuthentication(BaseAuthentication):
    """Bearer agent keys (`wdn_<prefix>_<secret>`); other schemes are left to the next class."""

    def authenticate(self, request: Request) -> tuple[AgentPrincipal, str] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            from core.errors import AuthenticationFailed

            raise AuthenticationFailed("Send the key as 'Authorization: Bearer <key>'.", detail={"reason": "malformed"})
        principal = authenticate_key(header[1].decode("latin-1"))
        return principal, principal.prefix

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="warden"'


class IsAgent(BasePermission):
    """Only an authenticated agent (not a human) may call this endpoint."""

    message = "Only agents may call this endpoint: authenticate with 'Authorization: Bearer <agent key>'."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(getattr(request.user, "is_agent", False))
