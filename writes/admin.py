from django.contrib import admin

from writes.models import WriteRequest


@admin.register(WriteRequest)
class WriteRequestAdmin(admin.ModelAdmin):
    """The request log, read-only: it is what the workers apply."""

    list_display = [
        "id",
        "request_id",
        "kind",
        "object_key",
        "partition",
        "state",
        "accepted_at",
        "finished_at",
        "applied_by",
    ]
    list_filter = ["state", "kind", "partition"]
    search_fields = ["request_id", "object_key"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False
