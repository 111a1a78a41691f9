"""Admin building blocks shared by the apps."""

from __future__ import annotations

from typing import Any


class ReadOnlyAdminMixin:
    """A model admin that shows and never changes: history and logs the services write."""

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
