"""The API's error plumbing: the exception handler, the JSON parser and the last-resort middleware."""

from __future__ import annotations

import io
import json
import logging

import pytest
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpResponse, HttpResponseNotFound, JsonResponse
from django.test import RequestFactory, override_settings
from rest_framework import exceptions, serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from core.api.errors import error_body, exception_handler
from core.api.parsers import BoundedJSONParser
from core.api.serializers import StrictFieldsMixin
from core.errors import AuthenticationFailed, Conflict, IllegalTransition, InvalidInput, NotFound, RequestTooLarge
from core.middleware import ApiErrorMiddleware
from core.testing import assert_error

factory = RequestFactory()


def _render(response):
    """A DRF Response rendered as JSON, so `assert_error` can read it."""
    from rest_framework.renderers import JSONRenderer

    response.accepted_renderer = JSONRenderer()
    response.accepted_media_type = "application/json"
    response.renderer_context = {}
    return response.render()


def handled(exc: Exception, view: APIView | None = None):
    view = view or APIView()
    request = Request(factory.get("/api/v1/x"))
    response = exception_handler(exc, {"view": view, "request": request})
    return None if response is None else _render(response)


# Domain errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidInput(detail={"name": ["Required."]}), 400, "invalid"),
        (NotFound(), 404, "not_found"),
        (Conflict("Busy."), 409, "conflict"),
        (IllegalTransition(), 409, "illegal_transition"),
        (AuthenticationFailed(detail={"reason": "revoked"}), 401, "authentication_failed"),
        (RequestTooLarge(), 413, "request_too_large"),
    ],
)
def test_warden_errors_keep_their_code_status_and_detail(error, status, code):
    body = assert_error(handled(error), status, code)
    assert body["message"] == error.message
    assert body["detail"] == error.detail


def test_warden_error_defaults():
    error = Conflict()
    assert (error.message, error.detail) == (Conflict.default_message, {})
    assert str(error) == Conflict.default_message


# Django and DRF errors ---------------------------------------------------------------------


def test_django_validation_error_uses_drf_field_names():
    error = DjangoValidationError({"__all__": ["Whole object."], "scope": ["Bad scope."]})
    body = assert_error(handled(error), 400, "invalid")
    assert body["detail"] == {"non_field_errors": ["Whole object."], "scope": ["Bad scope."]}


def test_protected_error_is_in_use():
    from django.db.models import ProtectedError

    body = assert_error(handled(ProtectedError("protected", {"a", "b"})), 409, "in_use")
    assert body["detail"] == {"referenced_by": ["a", "b"]}


def test_http404_and_django_permission_denied():
    assert_error(handled(Http404("secret path detail")), 404, "not_found")
    assert_error(handled(DjangoPermissionDenied()), 403, "permission_denied")


def test_drf_validation_error_list_becomes_non_field_errors():
    body = assert_error(handled(exceptions.ValidationError(["Nope."])), 400, "invalid")
    assert body["detail"] == {"non_field_errors": ["Nope."]}


def test_parse_error_keeps_its_specific_message():
    body = assert_error(handled(exceptions.ParseError("Bad JSON at line 1.")), 400, "malformed")
    assert body["message"] == "Bad JSON at line 1."


def test_throttled_sets_retry_after():
    response = handled(exceptions.Throttled(wait=30))
    assert_error(response, 429, "throttled")
    assert response["Retry-After"] == "30"


def test_not_authenticated_without_a_challenge_is_403():
    class NoChallengeView(APIView):
        authentication_classes = []

    response = handled(exceptions.NotAuthenticated(), NoChallengeView())
    assert_error(response, 403, "not_authenticated")
    assert "WWW-Authenticate" not in response


def test_unknown_exceptions_are_left_to_the_middleware():
    assert handled(RuntimeError("boom")) is None


def test_error_body_shape():
    assert error_body("x", "y") == {"code": "x", "message": "y", "detail": {}}
    assert error_body("x", "y", ["z"]) == {"code": "x", "message": "y", "detail": ["z"]}


# Parser ------------------------------------------------------------------------------------


def test_parser_reads_strict_json():
    assert BoundedJSONParser().parse(io.BytesIO(b'{"a": [1, 2.5, null]}')) == {"a": [1, 2.5, None]}


@pytest.mark.parametrize("raw", [b"NaN", b'{"a": Infinity}', b'{"a": -Infinity}', b"{", b"\xff"])
def test_parser_refuses_what_is_not_json(raw):
    with pytest.raises(exceptions.ParseError):
        BoundedJSONParser().parse(io.BytesIO(raw))


def test_parser_refuses_bodies_over_the_limit():
    with override_settings(WARDEN={"API_MAX_REQUEST_BYTES": 8}):
        assert BoundedJSONParser().parse(io.BytesIO(b'"123456"')) == "123456"  # exactly 8 bytes
        with pytest.raises(RequestTooLarge) as error:
            BoundedJSONParser().parse(io.BytesIO(b'"1234567"'))
    assert error.value.detail == {"limit_bytes": 8}


# Strict serializers ------------------------------------------------------------------------


class _Strict(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField()


def test_strict_fields_refuse_unknown_keys():
    serializer = _Strict(data={"name": "x", "nmae": "y", "extra": 1})
    assert not serializer.is_valid()
    assert serializer.errors == {"extra": ["Unknown field."], "nmae": ["Unknown field."]}
    assert _Strict(data={"name": "x"}).is_valid()


# Middleware --------------------------------------------------------------------------------


def _middleware(response: HttpResponse | None = None) -> ApiErrorMiddleware:
    return ApiErrorMiddleware(lambda request: response or HttpResponse("ok"))


def test_unhandled_exception_under_api_is_a_json_500(caplog):
    request = factory.post("/api/v1/agents", data=json.dumps({"key": "wdn_secret"}), content_type="application/json")
    with caplog.at_level(logging.ERROR, logger="warden.api"):
        response = _middleware().process_exception(request, RuntimeError("database exploded"))
    body = assert_error(response, 500, "internal_error")
    assert "database exploded" not in body["message"]
    assert "Traceback" not in response.content.decode()
    assert any("/api/v1/agents" in record.getMessage() for record in caplog.records)
    assert not any("wdn_secret" in record.getMessage() for record in caplog.records)


def test_request_too_big_under_api_is_a_json_413():
    response = _middleware().process_exception(factory.post("/api/v1/roles"), RequestDataTooBig("too big"))
    assert_error(response, 413, "request_too_large")


def test_exceptions_outside_the_api_are_left_to_django():
    assert _middleware().process_exception(factory.get("/admin/"), RuntimeError("boom")) is None


def test_html_404_under_api_becomes_json():
    response = _middleware(HttpResponseNotFound("<h1>Not Found</h1>"))(factory.get("/api/v1/nope"))
    body = assert_error(response, 404, "not_found")
    assert "/api/v1/nope" in body["message"]


def test_json_404_under_api_is_kept():
    original = JsonResponse({"code": "not_found", "message": "No agent.", "detail": {}}, status=404)
    assert _middleware(original)(factory.get("/api/v1/agents/x")) is original


def test_html_404_outside_the_api_is_kept():
    original = HttpResponseNotFound("<h1>Not Found</h1>")
    assert _middleware(original)(factory.get("/admin/nope")) is original
