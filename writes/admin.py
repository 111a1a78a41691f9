from django.contrib import admin

from core.admin import ReadOnlyAdminMixin
from writes.models import WriteRequest


@admin.register(WriteRequest)
class WriteRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
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
