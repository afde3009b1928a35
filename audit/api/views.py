"""The audit trail API: records, blocks, inclusion proofs, sealing on demand (staff with audit permissions)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audit import proofs
from audit.api import serializers as s
from audit.filtersets import AuditRecordFilterSet
from audit.models import AuditRecord, Block
from audit.sealing import seal_pending
from core.api.serializers import ErrorSerializer
from core.errors import Conflict


class NotSealed(Conflict):
    code = "not_sealed"


class AuditRecordViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[AuditRecord]):
    """The trail, newest first; each record with its seal status and, once sealed, its proof."""

    queryset = AuditRecord.objects.select_related("seal")
    serializer_class = s.AuditRecordSerializer
    filterset_class = AuditRecordFilterSet
    ordering_fields = ["seq", "at"]
    ordering = ["-seq"]

    @extend_schema(
        responses={200: s.ProofSerializer, 409: OpenApiResponse(ErrorSerializer, description="Not sealed yet.")},
        description=(
            "The record, its RFC 6962 inclusion proof and its block: verifiable offline with SHA-256 alone "
            "(docs/audit-proofs.md). 409 `not_sealed` until the sealer has taken the record (seconds)."
        ),
    )
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)
    def proof(self, request: Request, pk: str | None = None) -> Response:
        record = self.get_object()
        try:
            return Response(proofs.proof_document(record))
        except proofs.NotSealed as error:
            raise NotSealed(str(error), detail={"seq": record.seq}) from None


class BlockViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[Block]):
    """Sealed blocks, newest first: Merkle root, link to the previous block, block hash."""

    queryset = Block.objects.all()
    serializer_class = s.BlockSerializer
    ordering_fields = ["height"]
    ordering = ["-height"]


class SealNow(APIView):
    """Seal every pending record now instead of waiting for the periodic task."""

    required_permissions = ["audit.view_block"]

    @extend_schema(
        request=None,
        responses={200: {"type": "object", "properties": {"blocks": {}, "records": {}}}},
        description="Seal unsealed records into new blocks now (auditors and Warden admins).",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        result = seal_pending()
        return Response({"blocks": result.blocks, "records": result.records})

    def get_queryset(self) -> QuerySet[Block]:
        return Block.objects.none()
