from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from core.admin import ReadOnlyAdminMixin
from writes.models import WriteRequest
from writes.selectors import partitions_overview
from writes.services import write_requests_retry


@admin.register(WriteRequest)
class WriteRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The request log, read-only: it is what the workers apply. Failed writes can be put
    back (the action), and the partitions page shows the log as the owners see it."""

    list_display = [
        "id",
        "request_id",
        "kind",
        "object_key",
        "partition",
        "state",
        "attempts",
        "accepted_at",
        "finished_at",
        "applied_by",
    ]
    list_filter = ["state", "kind", "partition"]
    search_fields = ["request_id", "object_key"]
    actions = ["retry_failed"]

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("writes.change_writerequest")

    @admin.action(description="Put the selected failed writes back", permissions=["retry"])
    def retry_failed(self, request: HttpRequest, queryset: QuerySet[WriteRequest]) -> None:
        chosen = list(queryset.values_list("request_id", flat=True))
        retried = write_requests_retry(request_ids=chosen)
        self.message_user(
            request,
            f"{len(retried)} failed write(s) pending again, at the end of their objects' "
            f"queues; {len(chosen) - len(retried)} not failed, left alone.",
            messages.SUCCESS if retried else messages.WARNING,
        )

    def get_urls(self) -> list[URLPattern]:
        page = self.admin_site.admin_view(self.partitions_view)
        return [path("partitions/", page, name="writes_partitions"), *super().get_urls()]

    def partitions_view(self, request: HttpRequest) -> HttpResponse:
        """Each partition as the owners report it; the page reloads itself every 2 s."""
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Request log partitions",
            "opts": self.model._meta,
            "overview": partitions_overview(),
        }
        return TemplateResponse(request, "admin/writes/writerequest/partitions.html", context)
