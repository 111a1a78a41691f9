"""What a Django user writes without the product, behind the same authentication as the
product's API (DRF's default authentication and IsAuthenticated), each checking ownership:

(a) `inline_update`: the seeds' conditional UPDATE, inline: one statement, one commit;
(b) `inline_lock`: the seeds' accepted answer, `select_for_update()` then save, inline;
(c) `delay_lock`: `.delay()` of a task doing (b), applied by an ordinary Celery worker.

One consumption of 1 per request; 200 with what remains, 409 when the quota is exhausted.
"""

from __future__ import annotations

from celery import shared_task
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.decorators import api_view
from rest_framework.request import Request
from rest_framework.response import Response

from quotas.models import Quota


@api_view(["POST"])
def inline_update(request: Request, quota_id: int) -> Response:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE quotas_quota SET remaining = remaining - 1 "
            "WHERE id = %s AND owner_id = %s AND remaining > 0 RETURNING remaining",
            [quota_id, request.user.pk],
        )
        row = cursor.fetchone()
    if row is None:
        return Response({"detail": "refused"}, status=409)
    return Response({"remaining": row[0]})


@api_view(["POST"])
def inline_lock(request: Request, quota_id: int) -> Response:
    with transaction.atomic():
        quota = Quota.objects.select_for_update().get(pk=quota_id, owner=request.user)
        if quota.remaining < 1:
            return Response({"detail": "refused"}, status=409)
        quota.remaining -= 1
        quota.save(update_fields=["remaining"])
    return Response({"remaining": quota.remaining})


@shared_task(name="bench.lock_consume")
def lock_consume(quota_id: int) -> int:
    """(b) as a Celery task, one message per write."""
    with transaction.atomic():
        quota = Quota.objects.select_for_update().get(pk=quota_id)
        if quota.remaining >= 1:
            quota.remaining -= 1
            quota.save(update_fields=["remaining"])
    return quota.remaining


@api_view(["POST"])
def delay_lock(request: Request, quota_id: int) -> Response:
    if not Quota.objects.filter(pk=quota_id, owner=request.user).exists():
        return Response({"detail": "not found"}, status=404)
    result = lock_consume.delay(quota_id)
    return Response({"task_id": result.id}, status=202)


# --- Floors: the web tier alone, no write at all ---------------------------------------------


@csrf_exempt
def noop_django(request: HttpRequest) -> JsonResponse:
    """A plain Django view answering 202: what the server, Django and its middleware cost."""
    request.body  # noqa: B018  (read, as every real view does: the server keeps the connection)
    return JsonResponse({"state": "pending"}, status=202)


@api_view(["POST"])
def noop_drf(request: Request) -> Response:
    """A DRF view behind the same authentication: what DRF and authentication add."""
    return Response({"state": "pending"}, status=202)
