"""Routes of the registry API under /api/v1/."""

from rest_framework.routers import SimpleRouter

from registry.api.views import AgentViewSet, CredentialViewSet, GrantViewSet, RoleViewSet


class OptionalSlashRouter(SimpleRouter):
    """Routes that answer with or without a trailing slash (`/agents` and `/agents/`).

    Clients written from the docs use no slash; browsers and DRF's browsable API add one.
    A redirect would turn a POST into a GET, so both forms are matched directly.
    """

    def __init__(self) -> None:
        super().__init__(trailing_slash=False, use_regex_path=True)
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("agents", AgentViewSet, basename="agent")
router.register("roles", RoleViewSet, basename="role")
router.register("grants", GrantViewSet, basename="grant")
router.register("credentials", CredentialViewSet, basename="credential")

urlpatterns = router.urls
