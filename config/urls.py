"""Top-level URLs: the admin, the pages (audit trail), the API (v1), its OpenAPI schema and docs, health probes."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.views import healthz, readyz
from policy.api.views import jwks

admin.site.site_header = "Warden"
admin.site.site_title = "Warden"
admin.site.index_title = "Agent fleet governance"
admin.site.site_url = None  # "/" is the admin itself; no separate public site

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("api/v1/", include("registry.api.urls")),
    path("api/v1/", include("policy.api.urls")),
    path("api/v1/", include("audit.api.urls")),
    path("api/v1/", include("approvals.api.urls")),
    path("api/v1/", include("guardian.api.urls")),
    path("approvals/", include("approvals.urls")),
    path("", include("telemetry.urls")),
    path(".well-known/jwks.json", jwks, name="jwks"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]
