from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.views import healthz
from quotas.api import (
    QuotaConsumeBatchView,
    QuotaConsumeView,
    QuotaDetailView,
    QuotaListView,
    QuotaRefillView,
)
from tagging.api import ImageDetailView, ImageListView, ImageTagsAddView, ImageTagsRemoveView
from writes.api import WriteRequestDetailView
from writes.metrics import metrics_view

api = [
    path("images/", ImageListView.as_view(), name="image-list"),
    path("images/<int:image_id>/", ImageDetailView.as_view(), name="image-detail"),
    path("images/<int:image_id>/tags/", ImageTagsAddView.as_view(), name="image-tags-add"),
    path(
        "images/<int:image_id>/tags/remove/",
        ImageTagsRemoveView.as_view(),
        name="image-tags-remove",
    ),
    path("quotas/", QuotaListView.as_view(), name="quota-list"),
    path("quotas/<int:quota_id>/", QuotaDetailView.as_view(), name="quota-detail"),
    path("quotas/<int:quota_id>/consume/", QuotaConsumeView.as_view(), name="quota-consume"),
    path(
        "quotas/<int:quota_id>/consume/batch/",
        QuotaConsumeBatchView.as_view(),
        name="quota-consume-batch",
    ),
    path("quotas/<int:quota_id>/refill/", QuotaRefillView.as_view(), name="quota-refill"),
    path(
        "requests/<str:request_id>/", WriteRequestDetailView.as_view(), name="write-request-detail"
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("api/", include(api)),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
]

handler400 = "core.views.bad_request"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
