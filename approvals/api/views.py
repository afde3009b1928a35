"""The approvals API: approvers decide escalated calls, agents withdraw them and register webhooks.

Humans authenticate by session or basic auth; the approver is always the logged-in user.
Agents authenticate with their key and see only their own approvals and webhooks.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from approvals import services, webhooks
from approvals.api import serializers as s
from approvals.choices import ApprovalKind
from approvals.models import Approval, Delivery, Webhook
from core.actors import Actor
from core.api.permissions import StaffModelPermissions
from policy.api.authentication import AgentKeyAuthentication, IsAgent
from policy.decisions import AgentPrincipal, agent_actor, check_body
from policy.engine.validation import CompiledSchema


def _is_agent(request: Request) -> bool:
    return bool(getattr(request.user, "is_agent", False))


def _agent_actor(principal: AgentPrincipal) -> Actor:
    return agent_actor(principal.agent_id)


_VOTE = CompiledSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["verdict"],
        "properties": {
            "verdict": {"enum": ["approve", "reject"]},
            "comment": {"type": "string", "maxLength": services.MAX_COMMENT},
        },
    }
)
_CANCEL = CompiledSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": services.MAX_COMMENT}},
    }
)
_WEBHOOK = CompiledSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {"url": {"type": "string", "minLength": 1, "maxLength": 500}},
    }
)


class ApprovalViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Approval]):
    """Approvals of escalated tool calls: staff with the view permission see all, an agent its own."""

    authentication_classes = [AgentKeyAuthentication, *APIView.authentication_classes]
    serializer_class = s.ApprovalSerializer
    filterset_fields = ["state", "tool", "risk"]
    ordering_fields = ["due_at", "created_at", "settled_at", "risk_rank"]
    ordering = ["due_at", "risk_rank"]

    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_permissions(self) -> list[Any]:
        if _is_agent(self.request):
            return [IsAgent()] if self.action in {"list", "retrieve", "cancel"} else [_Never()]
        if self.action in {"vote", "cancel"}:
            return [_StaffDecider()]
        return [StaffModelPermissions()]

    def get_queryset(self) -> QuerySet[Approval]:
        queryset = Approval.objects.select_related("agent", "tool_call").prefetch_related("votes__approver")
        if _is_agent(self.request):
            # An agent sees the approvals of its escalated calls, never the reviews humans make of it.
            queryset = queryset.filter(
                agent_id=cast(AgentPrincipal, self.request.user).agent_id, kind=ApprovalKind.ESCALATION
            )
        return queryset

    @extend_schema(
        request=s.VoteRequestSerializer,
        responses={200: s.ApprovalSerializer},
        description=(
            "Approve or reject (members of approvers; the approver is the logged-in user). A reject needs a "
            "comment. 409 `already_settled` names who settled it first; quorum and separation of duties apply."
        ),
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def vote(self, request: Request, pk: str | None = None) -> Response:
        check_body(_VOTE, request.data)
        services.vote(
            approval_id=pk, user=request.user, verdict=request.data["verdict"], comment=request.data.get("comment", "")
        )
        return Response(s.ApprovalSerializer(self.get_queryset().get(pk=str(pk))).data)

    @extend_schema(
        request=s.CancelRequestSerializer,
        responses={200: s.ApprovalSerializer},
        description="Withdraw a pending escalated call: its own agent, or an approver. The call is denied.",
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        check_body(_CANCEL, request.data)
        if _is_agent(request):
            principal = cast(AgentPrincipal, request.user)
            services.cancel(
                approval_id=pk,
                actor=_agent_actor(principal),
                reason=request.data["reason"],
                agent_id=principal.agent_id,
            )
        else:
            services.cancel(
                approval_id=pk, actor=Actor.from_user(request.user), reason=request.data["reason"], user=request.user
            )
        return Response(s.ApprovalSerializer(self.get_queryset().get(pk=str(pk))).data)


class _StaffDecider(StaffModelPermissions):
    """Active staff holding `approvals.decide_approval` (the approvers group has it)."""

    message = "Only members of approvers (with the permission to decide approvals) may decide."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff and services.can_decide(user))


class _Never(IsAgent):
    message = "Agents cannot decide approvals."

    def has_permission(self, request: Request, view: Any) -> bool:
        return False


class WebhookViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Webhook],
):
    """Webhooks an agent registered to hear when its escalated calls settle (agents manage their own)."""

    authentication_classes = [AgentKeyAuthentication, *APIView.authentication_classes]
    serializer_class = s.WebhookSerializer
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def get_permissions(self) -> list[Any]:
        if self.action in {"create", "destroy"}:
            return [IsAgent()]
        if _is_agent(self.request):
            return [IsAgent()]
        return [StaffModelPermissions()]

    def get_queryset(self) -> QuerySet[Webhook]:
        queryset = Webhook.objects.select_related("agent")
        if _is_agent(self.request):
            queryset = queryset.filter(agent_id=cast(AgentPrincipal, self.request.user).agent_id, active=True)
        return queryset

    @extend_schema(
        request=s.WebhookCreateSerializer,
        responses={201: s.RegisteredWebhookSerializer},
        description=(
            "Register an endpoint (agents only). The response carries the signing secret, once. Each settled "
            "approval is POSTed as JSON with "
            "`Warden-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, t + '.' + body)>`; "
            "failed deliveries are retried with exponential backoff. Hosts must be in WARDEN_WEBHOOK_ALLOWED_HOSTS."
        ),
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        check_body(_WEBHOOK, request.data)
        principal = cast(AgentPrincipal, request.user)
        registered = webhooks.register(
            agent_id=principal.agent_id, url=request.data["url"], actor=_agent_actor(principal)
        )
        document = dict(s.WebhookSerializer(registered.webhook).data)
        document["secret"] = registered.secret
        return Response(document, status=201)

    @extend_schema(description="Stop deliveries to this endpoint (agents only, their own).")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        principal = cast(AgentPrincipal, request.user)
        webhooks.remove(webhook_id=kwargs["pk"], agent_id=principal.agent_id, actor=_agent_actor(principal))
        return Response(status=204)

    @extend_schema(responses={200: s.DeliverySerializer(many=True)}, description="Deliveries and every attempt.")
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        webhook = self.get_object()
        rows = Delivery.objects.filter(webhook=webhook).prefetch_related("attempt_log")[:100]
        return Response(s.DeliverySerializer(rows, many=True).data)
