"""Routes of the policy API under /api/v1/ (with or without a trailing slash, like the registry's)."""

from django.urls import re_path

from policy.api.views import ToolCallViewSet, tool_calls_root

urlpatterns = [
    # POST is the decision hot path (see policy.api.views.decide_view); GET lists calls.
    re_path(r"^tool-calls/?$", tool_calls_root, name="tool-call-list"),
    re_path(
        r"^tool-calls/(?P<pk>[0-9a-fA-F-]{36})/?$",
        ToolCallViewSet.as_view({"get": "retrieve"}),
        name="tool-call-detail",
    ),
    re_path(
        r"^tool-calls/(?P<pk>[0-9a-fA-F-]{36})/result/?$",
        ToolCallViewSet.as_view({"post": "result"}),
        name="tool-call-result",
    ),
]
