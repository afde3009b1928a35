"""Routes of the policy API under /api/v1/."""

from policy.api.views import ToolCallViewSet
from registry.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("tool-calls", ToolCallViewSet, basename="tool-call")

urlpatterns = router.urls
