"""Every API error as JSON `{"code", "message", "detail"}` with the right status.

DRF's own exceptions, Django's validation and HTTP errors and Warden's domain errors all go
through `exception_handler`; `error_response` is the single place the shape is built.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError, RestrictedError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from core.errors import WardenError

# DRF exception class -> (stable code, default message).
_DRF_CODES: dict[type[exceptions.APIException], tuple[str, str]] = {
    exceptions.ValidationError: ("invalid", "The input is not valid; see detail for each field."),
    exceptions.ParseError: ("malformed", "The request body is not valid JSON."),
    exceptions.NotAuthenticated: (
        "not_authenticated",
        "Authentication required: log in or send HTTP Basic credentials.",
    ),
    exceptions.AuthenticationFailed: (
        "authentication_failed",
        "The credentials are not valid.",
    ),
    exceptions.PermissionDenied: (
        "permission_denied",
        "You do not have permission for this action; ask a Warden admin for the right group.",
    ),
    exceptions.NotFound: ("not_found", "Not found."),
    exceptions.MethodNotAllowed: ("method_not_allowed", "This method is not allowed here."),
    exceptions.NotAcceptable: ("not_acceptable", "Cannot produce the requested media type."),
    exceptions.UnsupportedMediaType: (
        "unsupported_media_type",
        "Send the body as application/json.",
    ),
    exceptions.Throttled: ("throttled", "Too many requests; retry later."),
}


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The error document every API error uses."""
    return {"code": code, "message": message, "detail": detail if detail is not None else {}}


def error_response(code: str, message: str, status_code: int, detail: Any = None) -> JsonResponse:
    """A plain Django JSON error response, for errors raised outside DRF views."""
    return JsonResponse(error_body(code, message, detail), status=status_code)


def _drf_error(exc: exceptions.APIException) -> tuple[str, str, Any]:
    for klass in type(exc).__mro__:
        if klass in _DRF_CODES:
            code, message = _DRF_CODES[klass]
            break
    else:
        code, message = (exc.default_code or "error"), str(exc.default_detail)
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return code, message, detail
    # Other DRF errors carry a single human string: use it as the message when specific.
    text = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else message
    if isinstance(exc, exceptions.MethodNotAllowed | exceptions.UnsupportedMediaType | exceptions.ParseError):
        message = text
    return code, message, {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's EXCEPTION_HANDLER: translate any known error into the Warden error document."""
    headers: dict[str, str] = {}
    if isinstance(exc, WardenError):
        code, message, detail, status_code = exc.code, exc.message, exc.detail, exc.status
        if status_code == status.HTTP_401_UNAUTHORIZED and context.get("view") is not None:
            headers["WWW-Authenticate"] = context["view"].get_authenticate_header(context["request"]) or "Bearer"
    elif isinstance(exc, DjangoValidationError):
        code, message = "invalid", "The input is not valid; see detail for each field."
        detail, status_code = as_serializer_error(exc), status.HTTP_400_BAD_REQUEST
        # Django names whole-object errors "__all__"; the API uses DRF's name for them.
        if NON_FIELD_ERRORS in detail:
            detail[api_settings.NON_FIELD_ERRORS_KEY] = detail.pop(NON_FIELD_ERRORS)
    elif isinstance(exc, ProtectedError | RestrictedError):
        code = "in_use"
        message = "This object is still referenced; remove or reassign what uses it first."
        detail = {"referenced_by": sorted({str(obj) for obj in list(exc.args[1])[:20]})}
        status_code = status.HTTP_409_CONFLICT
    elif isinstance(exc, Http404):
        code, message, detail, status_code = "not_found", "Not found.", {}, 404
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
        code, message, detail = _drf_error(exc)
        status_code = exc.status_code
    elif isinstance(exc, exceptions.APIException):
        code, message, detail = _drf_error(exc)
        status_code = exc.status_code
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            authenticate_header = context["view"].get_authenticate_header(context["request"])
            if authenticate_header:
                headers["WWW-Authenticate"] = authenticate_header
            else:
                status_code = status.HTTP_403_FORBIDDEN
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]
    else:
        return None
    set_rollback()
    return Response(error_body(code, message, detail), status=status_code, headers=headers)
