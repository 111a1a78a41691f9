"""The product's URLs plus the baselines under /bench/ (benchmark processes only)."""

from django.urls import path

from benchmarks.web import baselines
from project.urls import urlpatterns as product_urlpatterns

urlpatterns = [
    *product_urlpatterns,
    path("bench/inline-update/<int:quota_id>/", baselines.inline_update),
    path("bench/inline-lock/<int:quota_id>/", baselines.inline_lock),
    path("bench/delay/<int:quota_id>/", baselines.delay_lock),
    path("bench/noop-django/", baselines.noop_django),
    path("bench/noop-drf/", baselines.noop_drf),
]
handler400 = "core.views.bad_request"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"
