"""Routes of the audit API under /api/v1/audit/."""

from django.urls import re_path

from audit.api.views import AuditRecordViewSet, BlockViewSet, SealNow

urlpatterns = [
    re_path(r"^audit/records/?$", AuditRecordViewSet.as_view({"get": "list"}), name="audit-record-list"),
    re_path(
        r"^audit/records/(?P<pk>[0-9]+)/?$", AuditRecordViewSet.as_view({"get": "retrieve"}), name="audit-record-detail"
    ),
    re_path(
        r"^audit/records/(?P<pk>[0-9]+)/proof/?$",
        AuditRecordViewSet.as_view({"get": "proof"}),
        name="audit-record-proof",
    ),
    re_path(r"^audit/blocks/?$", BlockViewSet.as_view({"get": "list"}), name="audit-block-list"),
    re_path(r"^audit/blocks/(?P<pk>[0-9]+)/?$", BlockViewSet.as_view({"get": "retrieve"}), name="audit-block-detail"),
    re_path(r"^audit/seal/?$", SealNow.as_view(), name="audit-seal"),
]
