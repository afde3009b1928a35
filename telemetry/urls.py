"""Pages of the telemetry app (server-rendered, session login through the admin)."""

from django.urls import path

from telemetry.views import audit_trail

app_name = "telemetry"

urlpatterns = [
    path("audit/", audit_trail, name="audit-trail"),
]
