"""Quotas over HTTP. Views validate, check access and enqueue; nothing here touches
`remaining`: the partition workers do."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, Throttled, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import RETRY_AFTER, error_responses
from core.api_input import StrictCharField, StrictIntegerField
from core.errors import GuardedObjectNotFound
from core.permissions import HasModelPermission, owner_or_perm
from core.throttling import WriteRateThrottle
from quotas.models import Quota
from quotas.selectors import guarded_object_get, guarded_object_pattern, quota_get
from quotas.services import (
    KIND_CONSUME,
    KIND_REFILL,
    MAX_AMOUNT,
    MAX_LIMIT,
    QUOTA_CONSUME_GUARD,
    QUOTA_REFILL_GUARD,
    AmountAboveLimit,
    quota_create,
)
from writes.api import (
    READ_ERRORS,
    WRITE_ERRORS,
    WRITE_PARAMETERS,
    WRITE_RESPONSES,
    RequestIdField,
    WriteAcceptedSerializer,
    WriteView,
    accepted_response,
    request_id_valid,
)
from writes.services import WriteRefused, WriteSpec, write_requests_accept

# Items per batch: 500 items with request_ids of up to ~90 characters fit API_MAX_BODY_BYTES.
MAX_BATCH_ITEMS = 500


class QuotaSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    limit = StrictIntegerField(min_value=0, max_value=MAX_LIMIT)
    remaining = serializers.IntegerField(read_only=True)
    object = StrictCharField(
        required=False,
        allow_null=True,
        pattern=guarded_object_pattern(),
        pattern_rule='must be "app_label.model:pk" (pk a positive integer) with a model among: '
        + ", ".join(settings.QUOTA_GUARDED_MODELS),
        help_text='the guarded object as "app_label.model:pk", e.g. "tagging.image:42"; '
        "a model among QUOTA_GUARDED_MODELS; 404 guarded_object_not_found if it does not "
        "exist, 409 conflict if it already has a quota",
    )


class AmountSerializer(serializers.Serializer):
    amount = StrictIntegerField(default=1, min_value=1, max_value=MAX_AMOUNT)
    request_id = RequestIdField()


def _quota_data(quota: Quota) -> dict[str, Any]:
    guarded = None
    if quota.content_type_id is not None:
        content_type = ContentType.objects.get_for_id(quota.content_type_id)
        guarded = f"{content_type.app_label}.{content_type.model}:{quota.object_id}"
    return {"id": quota.pk, "limit": quota.limit, "remaining": quota.remaining, "object": guarded}


class QuotaListView(APIView):
    permission_classes = [IsAuthenticated, HasModelPermission]
    required_perm = "quotas.add_quota"

    @extend_schema(
        request=QuotaSerializer,
        responses={
            201: QuotaSerializer,
            **error_responses(
                400,
                401,
                403,
                404,
                406,
                409,
                413,
                415,
                503,
                e404="the object to guard does not exist (`code` guarded_object_not_found)",
                e409="the object already has a quota (`code` conflict)",
            ),
        },
        parameters=[RETRY_AFTER],
        operation_id="quota_create",
    )
    def post(self, request: Request) -> Response:
        serializer = QuotaSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reference = serializer.validated_data.get("object")
        guarded = None
        if reference is not None:
            guarded = guarded_object_get(reference=reference)
            if guarded is None:
                raise GuardedObjectNotFound(f"{reference} does not exist")
        quota = quota_create(
            limit=serializer.validated_data["limit"], guarded_object=guarded, owner=request.user
        )
        return Response(_quota_data(quota), status=201)


class QuotaDetailView(APIView):
    @extend_schema(
        responses={200: QuotaSerializer, **READ_ERRORS},
        parameters=[RETRY_AFTER],
        operation_id="quota_get",
    )
    def get(self, request: Request, quota_id: int) -> Response:
        quota = quota_get(quota_id=quota_id)
        if quota is None:
            raise NotFound(f"no quota {quota_id}")
        if not owner_or_perm(request.user, quota, "quotas.view_quota"):
            raise PermissionDenied("you may not see this quota")
        return Response(_quota_data(quota))


class _QuotaWriteView(WriteView):
    serializer_class = AmountSerializer
    object_arg = "quota_id"
    perm = "quotas.consume_quota"

    def payload(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"amount": data["amount"]}

    def fast_validate(self, data: Any) -> tuple[dict[str, Any], str | None] | None:
        if type(data) is not dict or not data.keys() <= {"amount", "request_id"}:
            return None
        amount = data.get("amount", 1)
        ok, request_id = request_id_valid(data)
        if type(amount) is not int or not 1 <= amount <= MAX_AMOUNT or not ok:
            return None
        return {"amount": amount}, request_id

    def explain_refusal(self, request: Request, object_id: int, payload: dict | None) -> None:
        quota_write_refusal(request, object_id, amounts=[payload["amount"]] if payload else [])


def quota_write_refusal(request: Request, quota_id: int, *, amounts: list[int]) -> None:
    """Raise why these writes to a quota are refused: 404 guarded_object_not_found, 403,
    then 409 amount_above_limit for a consumption above the limit (it could never be
    granted); return if nothing is wrong."""
    quota = quota_get(quota_id=quota_id)
    if quota is None:
        raise GuardedObjectNotFound(f"quota {quota_id} does not exist")
    if not owner_or_perm(request.user, quota, "quotas.consume_quota"):
        raise PermissionDenied("you may not use this quota")
    too_big = [i for i, amount in enumerate(amounts) if amount > quota.limit]
    if too_big and len(amounts) == 1:
        raise AmountAboveLimit(
            f"amount {amounts[0]} exceeds the quota's limit of {quota.limit}: it can never fit"
        )
    if too_big:
        raise AmountAboveLimit(
            f"item {too_big[0]}: amount {amounts[too_big[0]]} exceeds the quota's limit of "
            f"{quota.limit}: it can never fit"
        )


CONSUME_RESPONSES = {
    **WRITE_RESPONSES,
    409: OpenApiResponse(
        WRITE_ERRORS[409].response,
        description="`request_id` already used for a different write (`code` "
        "request_id_conflict), or an amount above the quota's limit, which can never fit "
        "(`code` amount_above_limit)",
    ),
}


@extend_schema_view(
    post=extend_schema(
        request=AmountSerializer,
        responses=CONSUME_RESPONSES,
        parameters=WRITE_PARAMETERS,
        operation_id="quota_consume",
    )
)
class QuotaConsumeView(_QuotaWriteView):
    """Consume from a quota: granted while enough remains, else refused (see the status)."""

    kind = KIND_CONSUME
    guard = QUOTA_CONSUME_GUARD


@extend_schema_view(
    post=extend_schema(
        request=AmountSerializer,
        responses=WRITE_RESPONSES,
        parameters=WRITE_PARAMETERS,
        operation_id="quota_refill",
    )
)
class QuotaRefillView(_QuotaWriteView):
    """Give units back to a quota, never above its limit."""

    kind = KIND_REFILL
    guard = QUOTA_REFILL_GUARD


class ConsumeBatchSerializer(serializers.Serializer):
    items = serializers.ListField(
        child=AmountSerializer(),
        min_length=1,
        max_length=MAX_BATCH_ITEMS,
        help_text=f"1-{MAX_BATCH_ITEMS} consumptions, applied in this order",
    )


class BatchAcceptedSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="items recorded now (repeats excluded)")
    requests = WriteAcceptedSerializer(many=True)


class QuotaConsumeBatchView(APIView):
    """Many consumptions of one quota in one call: one INSERT, one wake-up, all or none.

    For clients with many writes to send: each item is its own request (own `request_id`,
    own outcome at its `status_url`), applied in item order, exactly as if sent one by one.
    A `request_id` already used for a different write refuses the whole batch (409)."""

    throttle_classes = [WriteRateThrottle]

    @extend_schema(
        request=ConsumeBatchSerializer,
        responses={202: BatchAcceptedSerializer, **WRITE_ERRORS, 409: CONSUME_RESPONSES[409]},
        parameters=[RETRY_AFTER],
        operation_id="quota_consume_batch",
    )
    def post(self, request: Request, quota_id: int) -> Response:
        serializer = ConsumeBatchSerializer(data=request.data)
        if not serializer.is_valid():
            quota_write_refusal(request, quota_id, amounts=[])  # 404 and 403 come first
            raise ValidationError(serializer.errors)
        items = serializer.validated_data["items"]
        # DRF charged this call one write; every item is one.
        throttle = WriteRateThrottle()
        if len(items) > 1 and not throttle.allow_writes(request, len(items) - 1):
            raise Throttled(wait=throttle.wait())
        try:
            acceptances = write_requests_accept(
                writes=[
                    WriteSpec(
                        KIND_CONSUME, quota_id, {"amount": item["amount"]}, item.get("request_id")
                    )
                    for item in items
                ],
                requested_by=request.user,
                guard=QUOTA_CONSUME_GUARD,
            )
        except WriteRefused:
            quota_write_refusal(request, quota_id, amounts=[item["amount"] for item in items])
            raise
        body = {
            "accepted": sum(a.created for a in acceptances),
            "requests": [accepted_response(request, a, 0).data for a in acceptances],
        }
        return Response(body, status=202)
