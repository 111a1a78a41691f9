"""`GET /metrics`: the request log for Prometheus. Flower shows Celery's tasks and workers;
this shows what Flower cannot see: how many writes wait in each partition and for how long,
what became of them, how large the drains' groups are, who owns each partition.

Every scrape reads PostgreSQL's pending-rows index (never a final row) and the counters
table, and Redis's partition statuses. A service that cannot be read is reported
(`racefree_metrics_source_up{source} 0`) instead of failing the scrape.

Access: HTTP basic auth with METRICS_BASIC_AUTH ("user:password"), or an API token whose user
may view every request (`writes.view_writerequest`, the operator role).
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework.exceptions import AuthenticationFailed

from core.token_auth import CachedTokenAuthentication
from writes.counters import GROUP_SIZE_BUCKETS, counter_totals
from writes.selectors import partitions_overview


class RequestLogCollector:
    """Reads the request log's state at every scrape."""

    def collect(self) -> Iterator[Any]:
        overview = partitions_overview()
        unavailable = dict(overview["unavailable"])
        try:
            totals = counter_totals()
        except DatabaseError as exc:
            totals, unavailable["postgresql"] = {}, str(exc).strip()[:200]
        rows = overview["partitions"]

        pending = GaugeMetricFamily(
            "racefree_writes_pending", "Accepted writes not yet final", labels=["partition"]
        )
        oldest = GaugeMetricFamily(
            "racefree_writes_oldest_pending_seconds",
            "How long the oldest pending write of the partition has waited (0: none)",
            labels=["partition"],
        )
        finished = GaugeMetricFamily(
            "racefree_partition_finished_last_minute",
            "Writes its owner's drains finished in the last minute",
            labels=["partition"],
        )
        owner = InfoMetricFamily(
            "racefree_partition_owner",
            "The process owning the partition (host:pid)",
            labels=["partition"],
        )
        for row in rows:
            label = [str(row["partition"])]
            if row["pending"] is not None:
                pending.add_metric(label, row["pending"])
                oldest.add_metric(label, row["oldest_pending_s"] or 0.0)
            if row["finished_last_minute"] is not None:
                finished.add_metric(label, row["finished_last_minute"])
            if row["owner"]:
                owner.add_metric(label, {"owner": row["owner"]})
        yield from (pending, oldest, finished, owner)

        final = CounterMetricFamily(
            "racefree_writes_final",
            "Writes that became final, by kind and state (applied, refused, failed)",
            labels=["kind", "state"],
        )
        for name, value in sorted(totals.items()):
            if name.startswith("final|"):
                _, kind, state = name.split("|")
                final.add_metric([kind, state], value)
        yield final
        yield _group_sizes(totals)
        yield CounterMetricFamily(
            "racefree_reconciler_republished",
            "Drains the reconcilers published for writes left waiting (lost wake-ups)",
            value=totals.get("reconciler_republished", 0),
        )
        yield CounterMetricFamily(
            "racefree_drains_published",
            "Drain tasks published (wake-ups, continuations, reconciler)",
            value=totals.get("drains_published", 0),
        )
        up = GaugeMetricFamily(
            "racefree_metrics_source_up",
            "1 if this scrape could read the source (postgresql, redis)",
            labels=["source"],
        )
        for source in ("postgresql", "redis"):
            up.add_metric([source], 0 if source in unavailable else 1)
        yield up


def _group_sizes(totals: dict[str, int]) -> HistogramMetricFamily:
    buckets, cumulative = [], 0
    for bound in (*GROUP_SIZE_BUCKETS, "+Inf"):
        cumulative += totals.get(f"group_size|{bound}", 0)
        buckets.append((str(bound) if bound == "+Inf" else f"{bound}.0", cumulative))
    return HistogramMetricFamily(
        "racefree_drain_batch_size",
        "Writes applied per transaction (one object's group)",
        buckets=buckets,
        sum_value=totals.get("group_size_sum", 0),
    )


_registry = CollectorRegistry(auto_describe=False)
_registry.register(RequestLogCollector())


def _authorized(request: HttpRequest) -> bool:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header.startswith("Basic ") and settings.METRICS_BASIC_AUTH:
        try:
            given = base64.b64decode(header[6:]).decode()
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(given, settings.METRICS_BASIC_AUTH)
    if header.startswith("Token "):
        try:
            user, _ = CachedTokenAuthentication().authenticate_credentials(header[6:].strip())
        except (AuthenticationFailed, DatabaseError):
            return False
        return user.has_perm("writes.view_writerequest")
    return False


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; 401 without credentials."""
    if not _authorized(request):
        reason = "credentials required: basic auth (METRICS_BASIC_AUTH) or an operator's token"
        response = JsonResponse({"detail": reason}, status=401)
        response["WWW-Authenticate"] = 'Basic realm="racefree metrics"'
        return response
    return HttpResponse(generate_latest(_registry), content_type=CONTENT_TYPE_LATEST)
