from django.contrib import admin

from core.admin import ReadOnlyAdminMixin
from quotas.models import Quota, QuotaLedgerEntry


@admin.register(Quota)
class QuotaAdmin(admin.ModelAdmin):
    list_display = ["id", "limit", "remaining", "content_type", "object_id", "owner"]
    raw_id_fields = ["owner"]
    # `remaining` moves only through the services (the ledger must agree with it).
    readonly_fields = ["remaining"]


@admin.register(QuotaLedgerEntry)
class QuotaLedgerEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The ledger is history: readable, never edited by hand."""

    list_display = [
        "id",
        "quota",
        "request_id",
        "kind",
        "amount",
        "delta",
        "outcome",
        "remaining_after",
        "created_at",
    ]
    list_filter = ["kind", "outcome"]
    search_fields = ["request_id"]
