"""Telemetry's URLs: the audit trail page (session login through the admin) and Prometheus's /metrics."""

from django.urls import path

from telemetry.views import audit_trail, metrics

app_name = "telemetry"

urlpatterns = [
    path("audit/", audit_trail, name="audit-trail"),
    path("metrics", metrics, name="metrics"),
]
