"""Least privilege for humans: staff users with the matching Django model permission.

Unlike DRF's DjangoModelPermissions, reading needs the `view` permission too, so the
`viewers` group sees everything and changes nothing, and a user in no group sees nothing.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import DjangoModelPermissions
from rest_framework.request import Request


class StaffModelPermissions(DjangoModelPermissions):
    """Require an active staff user holding the model permission for the HTTP method."""

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "POST": ["%(app_label)s.add_%(model_name)s"],
        "PUT": ["%(app_label)s.change_%(model_name)s"],
        "PATCH": ["%(app_label)s.change_%(model_name)s"],
        "DELETE": ["%(app_label)s.delete_%(model_name)s"],
    }

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active and user.is_staff):
            return False
        required = getattr(view, "required_permissions", None)
        if required is not None:
            return bool(user.has_perms(required))
        return super().has_permission(request, view)
