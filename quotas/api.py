"""Quotas over HTTP. Views validate, check access and enqueue; nothing here touches
`remaining`: the partition workers do."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, Throttled, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import HasModelPermission, owner_or_perm
from core.throttling import WriteRateThrottle
from quotas.models import Quota
from quotas.services import (
    KIND_CONSUME,
    KIND_REFILL,
    MAX_AMOUNT,
    MAX_LIMIT,
    QUOTA_CONSUME_GUARD,
    QUOTA_REFILL_GUARD,
    quota_create,
)
from writes.api import (
    ERRORS,
    WAIT_PARAMETER,
    WRITE_ERRORS,
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
    limit = serializers.IntegerField(min_value=0, max_value=MAX_LIMIT)
    remaining = serializers.IntegerField(read_only=True)
    object = serializers.CharField(
        required=False,
        allow_null=True,
        help_text='the guarded object as "app_label.model:pk", e.g. "tagging.image:42"',
    )

    def validate_object(self, value: str | None) -> Any:
        if value is None:
            return None
        label, sep, pk = value.partition(":")
        if not sep or not pk or label not in settings.QUOTA_GUARDED_MODELS:
            allowed = ", ".join(settings.QUOTA_GUARDED_MODELS)
            raise ValidationError(f'expected "app_label.model:pk" with a model among: {allowed}')
        model = apps.get_model(label)
        try:
            return model.objects.get(pk=pk)
        except (model.DoesNotExist, ValueError, TypeError):
            raise ValidationError(f"{value} does not exist") from None


class AmountSerializer(serializers.Serializer):
    amount = serializers.IntegerField(default=1, min_value=1, max_value=MAX_AMOUNT)
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
        responses={201: QuotaSerializer, **ERRORS, 409: ERRORS[400]},
        operation_id="quota_create",
    )
    def post(self, request: Request) -> Response:
        serializer = QuotaSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        quota = quota_create(
            limit=serializer.validated_data["limit"],
            guarded_object=serializer.validated_data.get("object"),
            owner=request.user,
        )
        return Response(_quota_data(quota), status=201)


class QuotaDetailView(APIView):
    @extend_schema(responses={200: QuotaSerializer, **ERRORS}, operation_id="quota_get")
    def get(self, request: Request, quota_id: int) -> Response:
        quota = get_object_or_404(Quota, pk=quota_id)
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
    """Raise why these writes to a quota are refused: 404, 403, then 400 for a consumption
    above the limit (it could never be granted); return if nothing is wrong."""
    quota = get_object_or_404(Quota, pk=quota_id)
    if not owner_or_perm(request.user, quota, "quotas.consume_quota"):
        raise PermissionDenied("you may not use this quota")
    too_big = [i for i, amount in enumerate(amounts) if amount > quota.limit]
    if too_big and len(amounts) == 1:
        raise ValidationError({"amount": [f"exceeds the quota's limit of {quota.limit}"]})
    if too_big:
        raise ValidationError(
            {"items": [f"item {too_big[0]}: amount exceeds the quota's limit of {quota.limit}"]}
        )


@extend_schema_view(
    post=extend_schema(
        request=AmountSerializer,
        responses=WRITE_RESPONSES,
        parameters=[WAIT_PARAMETER],
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
        parameters=[WAIT_PARAMETER],
        operation_id="quota_refill",
    )
)
class QuotaRefillView(_QuotaWriteView):
    """Give units back to a quota, never above its limit."""

    kind = KIND_REFILL
    guard = QUOTA_REFILL_GUARD


class ConsumeBatchSerializer(serializers.Serializer):
    items = AmountSerializer(many=True, allow_empty=False, max_length=MAX_BATCH_ITEMS)


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
        responses={202: BatchAcceptedSerializer, **WRITE_ERRORS},
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
