"""The tool-call API: the decision endpoint agents call before every tool, and the record of calls.

POST /api/v1/tool-calls is Warden's hot path. It is served by `decide_view`, a plain Django
view doing exactly what the DRF action `ToolCallViewSet.create` documents (same parsing, same
authentication, same errors, same document) without DRF's per-request machinery, which cost
more than the policy engine itself. The DRF action stays as the documented operation in the
OpenAPI schema. Deny and escalate are decisions (200), not errors: errors are reserved for
requests Warden cannot decide (400, 401, 403, 409, 413, 415).
"""

from __future__ import annotations

import time
from typing import Any, cast

from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.errors import error_response
from core.api.parsers import BoundedJSONParser, parse_json_body
from core.api.permissions import StaffModelPermissions
from core.errors import AuthenticationFailed, InvalidInput, WardenError
from policy import decisions, hooks, tokens, waiting
from policy.api import schema as _schema  # noqa: F401  # registers the bearer scheme
from policy.api import serializers as s
from policy.api.authentication import REALM, AgentKeyAuthentication, IsAgent, principal_from_authorization
from policy.decisions import AgentPrincipal
from policy.engine import Outcome
from policy.models import ToolCall


class ToolCallViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ToolCall]):
    """Tool calls: agents ask for decisions and report results; agents see their own calls, staff all."""

    authentication_classes = [
        AgentKeyAuthentication,
        *APIView.authentication_classes,
    ]
    serializer_class = s.ToolCallSerializer
    ordering_fields = ["created_at", "tool", "decision"]
    ordering = ["-created_at"]
    filterset_fields = ["tool", "decision", "contract_drift"]

    def get_permissions(self) -> list[Any]:
        if self.action in {"create", "result"} or getattr(self.request.user, "is_agent", False):
            return [IsAgent()]
        return [StaffModelPermissions()]

    def get_parsers(self) -> list[Any]:
        return [BoundedJSONParser()]

    @extend_schema(
        operation_id="tool_calls_create",
        request=s.ToolCallRequestSerializer,
        responses={200: s.DecisionSerializer},
        description=(
            "Ask Warden whether a tool call may run; agents only (`Authorization: Bearer <agent key>`). "
            "The answer is `allow` (with a `decision_token` for the tool server), `deny` or `escalate`, "
            "with machine-readable reasons: deny and escalate are decisions (200), not errors. A repeated "
            "`idempotency_key` returns the original decision; the same key with a different call is a 409."
        ),
        tags=["tool-calls"],
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        started = time.perf_counter()
        call = decisions.CallRequest.from_body(request.data)
        record = decisions.decide_call(cast(AgentPrincipal, request.user), call, started=started)
        return Response(s.decision_document(record))

    def get_queryset(self) -> QuerySet[ToolCall]:
        queryset = ToolCall.objects.select_related("agent")
        user = self.request.user
        if getattr(user, "is_agent", False):
            queryset = queryset.filter(agent_id=cast(AgentPrincipal, user).agent_id)
        agent = self.request.query_params.get("agent")
        if agent:
            queryset = queryset.filter(agent__slug=agent)
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("agent", str, description="Only calls of the agent with this slug.")],
        tags=["tool-calls"],
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "wait",
                float,
                description="Long poll (seconds, at most 30): while the call is escalated and no human has "
                "decided, hold the answer until one does or the time is up.",
            )
        ],
        responses={200: s.ToolCallDetailSerializer},
        description=(
            "One tool call. For an escalated call, `decision` stays `escalate` until the approval settles it "
            "to `allow` or `deny`; `approval` tells its state. The calling agent gets the `decision_token` "
            "of an allowed call here while it is valid (staff never do)."
        ),
        tags=["tool-calls"],
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        wait = _wait_seconds(request.query_params.get("wait"))
        call = self.get_object()
        if wait and call.decision == Outcome.ESCALATE:
            queryset = self.get_queryset().filter(pk=call.pk)

            def settled() -> bool:
                return queryset.exclude(decision=Outcome.ESCALATE).exists()

            if waiting.wait(str(call.pk), wait, settled):
                call = self.get_object()
        document = dict(s.ToolCallSerializer(call).data)
        if getattr(request.user, "is_agent", False):
            document["decision_token"] = decisions.current_token(call)
        document.update(hooks.details(call))
        return Response(document)

    @extend_schema(
        request=s.ResultRequestSerializer,
        responses={200: s.ToolCallSerializer},
        description=(
            "Report what the tool did (agents only, once per call). An output that does not match the "
            "contract's output schema is recorded as `contract_drift`, not refused: the tool already ran."
        ),
        tags=["tool-calls"],
    )
    @action(detail=True, methods=["post"], url_path="result", filter_backends=[], pagination_class=None)
    def result(self, request: Request, pk: str | None = None) -> Response:
        if not getattr(request.user, "is_agent", False):
            self.permission_denied(request, message=IsAgent.message)
        call = decisions.report_result(cast(AgentPrincipal, request.user), pk, request.data)
        return Response(s.ToolCallSerializer(call).data)


def _wait_seconds(raw: str | None) -> float:
    """`?wait=` as seconds: a number from 0 to 30; anything else is a 400 naming the parameter."""
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= waiting.MAX_WAIT_SECONDS:
        raise InvalidInput(
            f"wait must be a number of seconds from 0 to {waiting.MAX_WAIT_SECONDS}.",
            detail={"wait": [f"Got {raw!r}; long polls are bounded at {waiting.MAX_WAIT_SECONDS} s."]},
        )
    return value


_list_or_create = ToolCallViewSet.as_view({"get": "list", "post": "create"})


@csrf_exempt  # agents authenticate with a bearer key, never a cookie: no CSRF exposure
def tool_calls_root(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """GET lists through DRF; POST (the hot path) goes to `decide_view`."""
    if request.method == "POST":
        return decide_view(request)
    return _list_or_create(request, *args, **kwargs)


# drf-spectacular documents this route from the viewset's actions.
tool_calls_root.cls = _list_or_create.cls  # type: ignore[attr-defined]
tool_calls_root.initkwargs = _list_or_create.initkwargs  # type: ignore[attr-defined]
tool_calls_root.actions = _list_or_create.actions  # type: ignore[attr-defined]


def decide_view(request: HttpRequest, *, audited: bool = True) -> HttpResponse:
    """POST /api/v1/tool-calls without DRF: bearer key, bounded JSON body, decision document.

    `audited=False` is for benchmarks/audit.py alone (see `decisions.decide_call`).
    """
    started = time.perf_counter()
    try:
        principal = _bearer_principal(request)
        if not request.content_type or request.content_type != "application/json":
            return error_response(
                "unsupported_media_type",
                f'Unsupported media type "{request.content_type}": send application/json.',
                415,
            )
        body = parse_json_body(request.body)
        record = decisions.decide_call(
            principal, decisions.CallRequest.from_body(body), started=started, audited=audited
        )
    except WardenError as error:
        response = error_response(error.code, error.message, error.status, error.detail)
        if error.status == 401:
            response["WWW-Authenticate"] = REALM
        return response
    return JsonResponse(s.decision_document(record))


def _bearer_principal(request: HttpRequest) -> AgentPrincipal:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    principal = principal_from_authorization(header)
    if principal is not None:
        return principal
    if header.strip() or request.user.is_authenticated:
        raise PermissionDenied(IsAgent.message)
    raise NotAuthenticated(
        "Authentication required: send 'Authorization: Bearer <agent key>'.", detail={"reason": "missing"}
    )


class NotAuthenticated(AuthenticationFailed):
    code = "not_authenticated"


class PermissionDenied(WardenError):
    code = "permission_denied"
    status = 403


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """Public keys that verify decision tokens (RFC 7517 JWK Set)."""
    response = JsonResponse(tokens.jwks())
    response["Cache-Control"] = "public, max-age=300"
    return response
