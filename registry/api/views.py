"""Registry API views. They validate input, call a service, and render the result."""

from __future__ import annotations

import datetime as dt
from typing import Any, cast

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.actors import Actor
from core.api.pagination import paginated_response
from registry import selectors, services
from registry.api import serializers as s
from registry.cards import agent_card
from registry.filtersets import AgentFilterSet, GrantFilterSet, RoleFilterSet
from registry.models import Agent, Credential, Grant, Role


def _actor(request: Request) -> Actor:
    return Actor.from_user(request.user)


class AgentViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet[Agent],
):
    """Agents. There is no delete: agents are retired, and kept for the record."""

    # Set per action: custom actions name the permissions they need.
    required_permissions: list[str] | None = None

    filterset_class = AgentFilterSet
    ordering_fields = ["name", "slug", "created_at", "updated_at", "last_seen_at", "risk_tier", "status"]
    ordering = ["name"]

    def get_queryset(self) -> QuerySet[Agent]:
        return selectors.agent_list()

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        return s.AgentDetailSerializer if self.action == "retrieve" else s.AgentSerializer

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        agent = services.agent_create(actor=_actor(self.request), **serializer.validated_data)
        serializer.instance = selectors.agent_get(agent.pk)

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        agent = services.agent_update(
            actor=_actor(self.request), agent=cast(Agent, serializer.instance), **serializer.validated_data
        )
        serializer.instance = selectors.agent_get(agent.pk)

    @extend_schema(request=s.AgentTransitionSerializer, responses={200: s.AgentDetailSerializer})
    @action(detail=True, methods=["post"], url_path="status", required_permissions=["registry.change_agent"])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        """Move the agent through its lifecycle (activate, suspend, quarantine, retire)."""
        agent = self.get_object()
        data = s.AgentTransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.agent_transition(
            actor=_actor(request), agent=agent, to=data.validated_data["status"], reason=data.validated_data["reason"]
        )
        return Response(s.AgentDetailSerializer(selectors.agent_get(agent.pk)).data)

    @extend_schema(
        responses={
            200: OpenApiResponse(
                inline_serializer("AgentCard", {"name": serializers.CharField()}),
                description="An A2A Agent Card with the Warden governance extension.",
            )
        }
    )
    @action(detail=True, methods=["get"], required_permissions=["registry.view_agent"])
    def card(self, request: Request, pk: str | None = None) -> Response:
        """The agent as an A2A Agent Card, with owner, authority, scope, risk and status."""
        return Response(agent_card(self.get_object()))

    @extend_schema(responses={200: s.ChangeRecordSerializer(many=True)})
    # No filter backends: the agent list's filters do not apply to its history (nor should they hide the agent).
    @action(detail=True, methods=["get"], required_permissions=["registry.view_agent"], filter_backends=[])
    def history(self, request: Request, pk: str | None = None) -> Response:
        """Every change to the agent, its grants and its keys, newest first."""
        return paginated_response(self, selectors.agent_history(self.get_object()), s.ChangeRecordSerializer)

    @extend_schema(methods=["get"], responses={200: s.CredentialSerializer(many=True)})
    @extend_schema(methods=["post"], request=s.CredentialIssueSerializer, responses={201: s.IssuedCredentialSerializer})
    @action(detail=True, methods=["get", "post"], required_permissions=["registry.view_credential"], filter_backends=[])
    def credentials(self, request: Request, pk: str | None = None) -> Response:
        """List the agent's keys, or issue a new one (the key is in this response only)."""
        agent = self.get_object()
        if request.method == "GET":
            return paginated_response(self, selectors.credential_list(agent), s.CredentialSerializer)
        if not request.user.has_perm("registry.add_credential"):
            self.permission_denied(request)
        data = s.CredentialIssueSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.credential_issue(actor=_actor(request), agent=agent, **data.validated_data)
        body = s.IssuedCredentialSerializer(issued.credential).data
        return Response(
            {**body, "key": issued.key}, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )


class RoleViewSet(viewsets.ModelViewSet[Role]):
    """Roles: authority templates shared by agents. A role in use cannot be deleted (409)."""

    serializer_class = s.RoleSerializer
    filterset_class = RoleFilterSet
    ordering_fields = ["name", "slug", "created_at"]
    ordering = ["name"]

    def get_queryset(self) -> QuerySet[Role]:
        return selectors.role_list()

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        role = services.role_create(actor=_actor(self.request), **serializer.validated_data)
        serializer.instance = selectors.role_list().get(pk=role.pk)

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        role = services.role_update(
            actor=_actor(self.request), role=cast(Role, serializer.instance), **serializer.validated_data
        )
        serializer.instance = selectors.role_list().get(pk=role.pk)

    def perform_destroy(self, instance: Role) -> None:
        services.role_delete(actor=_actor(self.request), role=instance)


class GrantViewSet(viewsets.ModelViewSet[Grant]):
    """Grants of tools to agents or roles."""

    serializer_class = s.GrantSerializer
    filterset_class = GrantFilterSet
    ordering_fields = ["tool", "created_at"]
    ordering = ["tool", "created_at"]

    def get_queryset(self) -> QuerySet[Grant]:
        return selectors.grant_list()

    def perform_create(self, serializer: serializers.BaseSerializer[Any]) -> None:
        data = dict(serializer.validated_data)
        serializer.instance = services.grant_create(actor=_actor(self.request), reason=data.pop("reason", ""), **data)

    def perform_update(self, serializer: serializers.BaseSerializer[Any]) -> None:
        serializer.instance = services.grant_update(
            actor=_actor(self.request), grant=cast(Grant, serializer.instance), **serializer.validated_data
        )

    def perform_destroy(self, instance: Grant) -> None:
        services.grant_delete(actor=_actor(self.request), grant=instance, reason="Removed through the API.")


class CredentialViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Credential]):
    """Agents' keys: read, rotate, revoke. Issue a key with POST /agents/<id>/credentials."""

    # Set per action: custom actions name the permissions they need.
    required_permissions: list[str] | None = None

    serializer_class = s.CredentialSerializer
    ordering_fields = ["created_at", "expires_at"]
    ordering = ["-created_at"]
    filterset_fields = ["agent__slug"]

    def get_queryset(self) -> QuerySet[Credential]:
        return selectors.credential_list()

    @extend_schema(request=s.CredentialRotateSerializer, responses={201: s.IssuedCredentialSerializer})
    @action(
        detail=True, methods=["post"], required_permissions=["registry.change_credential", "registry.add_credential"]
    )
    def rotate(self, request: Request, pk: str | None = None) -> Response:
        """Issue a replacement key; the old one stops now or after `grace_seconds`."""
        data = s.CredentialRotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.credential_rotate(
            actor=_actor(request),
            credential=self.get_object(),
            grace=dt.timedelta(seconds=data.validated_data["grace_seconds"]),
        )
        body = s.IssuedCredentialSerializer(issued.credential).data
        return Response(
            {**body, "key": issued.key}, status=status.HTTP_201_CREATED, headers={"Cache-Control": "no-store"}
        )

    @extend_schema(request=s.CredentialRevokeSerializer, responses={200: s.CredentialSerializer})
    @action(detail=True, methods=["post"], required_permissions=["registry.change_credential"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        """Revoke a key at once."""
        data = s.CredentialRevokeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        credential = services.credential_revoke(
            actor=_actor(request), credential=self.get_object(), reason=data.validated_data["reason"]
        )
        return Response(s.CredentialSerializer(credential).data)
