"""Telemetry's URLs: the audit trail and the fleet dashboards (admin session login), Prometheus's /metrics."""

from django.urls import path

from telemetry import dashboards
from telemetry.views import audit_trail, metrics

app_name = "telemetry"

urlpatterns = [
    path("audit/", audit_trail, name="audit-trail"),
    path("metrics", metrics, name="metrics"),
    path("fleet/", dashboards.overview, name="overview"),
    path("fleet/feed/", dashboards.feed, name="feed"),
    path("fleet/sprawl/", dashboards.sprawl_report, name="sprawl"),
    path("fleet/agents/<slug:slug>/", dashboards.agent_page, name="agent"),
    path("fleet/agents/<slug:slug>/quarantine", dashboards.agent_quarantine, name="agent-quarantine"),
    path("fleet/agents/<slug:slug>/release", dashboards.agent_release, name="agent-release"),
    path("fleet/calls/<uuid:call_id>/", dashboards.call_page, name="call"),
]
