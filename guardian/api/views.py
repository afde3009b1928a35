"""The guardian API: what guardians found, and the quarantines (staff with the view permission).

Releasing a quarantine needs `guardian.release_quarantine` (warden-admins) and a reason; the
registry's status endpoint releases too, with the same record.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from core.api.permissions import StaffModelPermissions
from core.errors import Conflict
from guardian import services
from guardian.api import serializers as s
from guardian.models import Assessment, Quarantine
from policy.decisions import check_body
from policy.engine.validation import CompiledSchema

_RELEASE = CompiledSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["reason"],
        "properties": {
            "reason": {"type": "string", "minLength": 1, "maxLength": 2000},
            "to": {"enum": ["active", "suspended"]},
        },
    }
)


class AssessmentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Assessment]):
    """Guardians' assessments, newest first (`?agent__slug=&tool=&action=&stage=&subject=&tool_call=`)."""

    permission_classes = [StaffModelPermissions]
    serializer_class = s.AssessmentSerializer
    filterset_fields = ["agent__slug", "tool", "action", "stage", "subject", "disagreement", "tool_call"]
    ordering_fields = ["created_at", "value"]
    ordering = ["-created_at", "-id"]

    def get_queryset(self) -> QuerySet[Assessment]:
        return Assessment.objects.select_related("guardian__agent", "agent").prefetch_related("scores")


class QuarantineViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Quarantine]):
    """Quarantines, newest first (`?agent__slug=&released_at__isnull=true` for the open ones)."""

    serializer_class = s.QuarantineSerializer
    filterset_fields = {"agent__slug": ["exact"], "released_at": ["isnull"]}
    ordering_fields = ["started_at", "released_at"]
    ordering = ["-started_at"]

    def get_permissions(self) -> list[Any]:
        return [StaffModelPermissions()] if self.action != "release" else [_Staff()]

    def get_queryset(self) -> QuerySet[Quarantine]:
        return Quarantine.objects.select_related("agent", "guardian__agent")

    @extend_schema(
        request=s.ReleaseRequestSerializer,
        responses={200: s.QuarantineSerializer},
        description=(
            "Release the quarantined agent (to active, or suspended) with a reason; needs the permission "
            "`guardian.release_quarantine`. 409 when the agent is no longer quarantined."
        ),
    )
    @action(detail=True, methods=["post"], filter_backends=[], pagination_class=None)
    def release(self, request: Request, pk: str | None = None) -> Response:
        check_body(_RELEASE, request.data)
        quarantine = self.get_object()
        if quarantine.released_at is not None:
            raise Conflict(
                "This quarantine was already released.", detail={"released_at": quarantine.released_at.isoformat()}
            )
        services.release(
            agent_id=quarantine.agent_id,
            user=request.user,
            reason=request.data["reason"],
            to=request.data.get("to", "active"),
        )
        return Response(s.QuarantineSerializer(self.get_queryset().get(pk=quarantine.pk)).data)


class _Staff(StaffModelPermissions):
    """Any active staff user may ask; the service checks the release permission (403 with a message)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and getattr(user, "is_staff", False))
