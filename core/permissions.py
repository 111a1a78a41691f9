"""Who may write what: an object's owner, or a user holding the model-wide permission."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request


def owner_or_perm(user: Any, obj: Any, perm: str) -> bool:
    """True if `user` owns `obj` (its `owner_id`) or holds `perm` (superusers hold all)."""
    if not user or not user.is_authenticated:
        return False
    return getattr(obj, "owner_id", None) == user.pk or user.has_perm(perm)


class HasModelPermission(BasePermission):
    """The view's `required_perm` (e.g. "tagging.add_image"), model-wide."""

    message = "you do not have permission to do this"

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(view.required_perm))
