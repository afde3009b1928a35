"""Routes of the guardian API under /api/v1/."""

from guardian.api.views import AssessmentViewSet, QuarantineViewSet
from registry.api.urls import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("guardian/assessments", AssessmentViewSet, basename="assessment")
router.register("quarantines", QuarantineViewSet, basename="quarantine")

urlpatterns = router.urls
