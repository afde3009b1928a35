"""Routes of the approvals API under /api/v1/."""

from approvals.api.views import ApprovalViewSet, WebhookViewSet
from registry.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("approvals", ApprovalViewSet, basename="approval")
router.register("webhooks", WebhookViewSet, basename="webhook")

urlpatterns = router.urls
