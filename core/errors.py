"""The one family of domain errors. Each has a stable `code`, an HTTP status and a message
that tells the caller how to fix the problem; the API renders them as
`{"code", "message", "detail"}`.
"""

from __future__ import annotations

from typing import Any


class WardenError(Exception):
    """Base of every domain error Warden raises on purpose."""

    code = "error"
    status = 400
    default_message = "The request could not be processed."

    def __init__(self, message: str | None = None, *, detail: Any = None) -> None:
        self.message = message or self.default_message
        self.detail = detail if detail is not None else {}
        super().__init__(self.message)


class InvalidInput(WardenError):
    """The input is well-formed but breaks a rule; `detail` maps fields to messages."""

    code = "invalid"
    status = 400
    default_message = "The input is not valid; see detail for each field."


class NotFound(WardenError):
    """The named object does not exist (or the caller may not know it exists)."""

    code = "not_found"
    status = 404
    default_message = "Not found."


class Conflict(WardenError):
    """The request conflicts with the current state of the object."""

    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class IllegalTransition(Conflict):
    """A lifecycle move that the state machine does not allow."""

    code = "illegal_transition"
    default_message = "This status change is not allowed from the current status."


class AuthenticationFailed(WardenError):
    """A credential was missing, malformed, unknown, expired or revoked."""

    code = "authentication_failed"
    status = 401
    default_message = "The credential is not valid."


class RequestTooLarge(WardenError):
    """The request body exceeds the configured limit."""

    code = "request_too_large"
    status = 413
    default_message = "The request body is too large."
