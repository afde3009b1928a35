"""The pending-approvals badge in the navigation, for users who may see the queue."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from approvals.choices import ApprovalState
from approvals.models import Approval

VIEW_PERMISSION = "approvals.view_approval"


def pending_approvals(request: HttpRequest) -> dict[str, Any]:
    """`approvals_pending`: the count (one indexed COUNT), or None when the user may not see the queue."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff or not user.has_perm(VIEW_PERMISSION):
        return {"approvals_pending": None}
    return {"approvals_pending": lambda: Approval.objects.filter(state=ApprovalState.PENDING).count()}
