"""Last line of defence for the API: no HTML error page and no traceback under /api/.

Anything a view did not handle becomes a JSON error; the exception is logged with the
request path only (never the body, which may hold secrets).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse

from core.api.errors import error_response

logger = logging.getLogger("warden.api")


class ApiErrorMiddleware:
    """Turn unhandled exceptions and Django's own 404/413 under /api/ into JSON errors."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/") and response.status_code == 404 and not _is_json(response):
            return error_response("not_found", f"No API endpoint at {request.path}.", 404)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            return None
        if isinstance(exception, RequestDataTooBig):
            return error_response("request_too_large", "The request body is too large.", 413)
        logger.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(
            "internal_error",
            "Warden hit an unexpected error; it has been logged. Retry, and report it if it persists.",
            500,
        )


def _is_json(response: HttpResponse) -> bool:
    return str(response.get("Content-Type", "")).startswith("application/json")
