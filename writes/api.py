"""The request log over HTTP: what an accepted write answers, and its status endpoint."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from django.db import InterfaceError, OperationalError
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.permissions import owner_or_perm
from core.throttling import WriteRateThrottle
from writes.selectors import write_request_get, write_request_wait
from writes.services import (
    REQUEST_ID_PATTERN,
    REQUEST_ID_RULE,
    Acceptance,
    WriteGuard,
    WriteRefused,
    write_request_accept,
)

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 10.0


class RequestIdField(serializers.RegexField):
    """An optional client idempotency key (letters, digits, . _ : -; 1-100 characters)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            REQUEST_ID_PATTERN,
            required=False,
            max_length=100,
            error_messages={"invalid": REQUEST_ID_RULE},
            help_text=f"idempotency key: {REQUEST_ID_RULE}",
            **kwargs,
        )


class WriteAcceptedSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    task_id = serializers.CharField(allow_null=True)
    status_url = serializers.URLField()
    state = serializers.ChoiceField(["pending", "applied", "refused", "failed"])
    result = serializers.DictField(required=False)


class WriteRequestSerializer(serializers.Serializer):
    request_id = serializers.CharField()
    kind = serializers.CharField()
    object = serializers.CharField(source="object_key")
    state = serializers.ChoiceField(["pending", "applied", "refused", "failed"])
    result = serializers.DictField()
    accepted_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description="invalid input, with the reasons"),
    401: OpenApiResponse(OpenApiTypes.OBJECT, description="no or bad token"),
    403: OpenApiResponse(OpenApiTypes.OBJECT, description="not allowed"),
    404: OpenApiResponse(OpenApiTypes.OBJECT, description="no such object"),
}
WRITE_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(OpenApiTypes.OBJECT, description="request_id used for another write"),
    413: OpenApiResponse(OpenApiTypes.OBJECT, description="body too large"),
    415: OpenApiResponse(OpenApiTypes.OBJECT, description="not JSON"),
    429: OpenApiResponse(OpenApiTypes.OBJECT, description="too many writes"),
}
WAIT_PARAMETER = OpenApiParameter(
    "wait",
    OpenApiTypes.NUMBER,
    description=f"seconds (at most {MAX_WAIT_SECONDS:g}) to wait for the outcome: 200 with "
    "the final state if known in time, else 202",
)
WRITE_RESPONSES = {
    202: OpenApiResponse(WriteAcceptedSerializer, description="accepted: durable, pending"),
    200: OpenApiResponse(WriteAcceptedSerializer, description="accepted and already final"),
    **WRITE_ERRORS,
}


def request_id_valid(data: dict[str, Any]) -> tuple[bool, str | None]:
    """(ok, request_id) of a body's optional `request_id`, as RequestIdField would judge it."""
    if "request_id" not in data:
        return True, None
    request_id = data["request_id"]
    ok = type(request_id) is str and REQUEST_ID_PATTERN.fullmatch(request_id) is not None
    return ok, request_id


def wait_seconds(request: Request) -> float:
    """The `?wait=` query parameter, validated (0 when absent)."""
    raw = request.query_params.get("wait")
    if raw in (None, ""):
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise ValidationError({"wait": ["must be a number of seconds"]}) from None
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise ValidationError({"wait": [f"must be between 0 and {MAX_WAIT_SECONDS:g} seconds"]})
    return seconds


@cache
def _status_path_prefix() -> str:
    # Resolved once: request ids need no quoting (letters, digits and . _ : -).
    return reverse("write-request-detail", args=["x"])[:-2]


def accepted_response(request: Request, acceptance: Acceptance, wait: float) -> Response:
    """202 with where to follow the request, or 200 with its outcome if final within `wait`."""
    write = acceptance.request
    body: dict[str, Any] = {
        "request_id": write.request_id,
        "task_id": acceptance.task_id,
        "status_url": request.build_absolute_uri(f"{_status_path_prefix()}{write.request_id}/"),
        "state": write.state,
    }
    final = write if write.is_final else None
    if final is None and wait > 0:
        try:
            final = write_request_wait(request=write, timeout=wait)
        except (OperationalError, InterfaceError):
            # The write is committed: the database vanishing while we wait for its outcome
            # must not turn its 202 into a 503 (a client would resend it).
            logger.warning("lost the database while waiting for %s", write.request_id)
    if final is not None and final.is_final:
        body.update(state=final.state, result=final.result)
        return Response(body, status=200)
    return Response(body, status=202)


class WriteView(APIView):
    """The base of every single-write endpoint: validate the body, accept the write (its
    object's existence and the caller's right to write it are checked by the INSERT itself,
    see WriteGuard), answer 202, or 200 with the outcome within `?wait=`.

    A subclass names its `kind`, `guard`, `serializer_class` and URL argument (`object_arg`),
    turns validated data into a payload (`payload`), and says precisely why a write was
    refused (`explain_refusal`: 404, 403 or 400, in that order of precedence, as it raises
    them also for an invalid body). Its schema is attached to the class with extend_schema.
    """

    kind = ""
    guard: WriteGuard
    serializer_class: type[serializers.Serializer]
    object_arg = ""
    throttle_classes = [WriteRateThrottle]

    def payload(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def fast_validate(self, data: Any) -> tuple[dict[str, Any], str | None] | None:
        """(payload, request_id) for a body the serializer would accept unchanged, checked
        without building it (it costs a tenth of a write's web time); None to let the
        serializer decide, and word its errors."""
        return None

    def explain_refusal(self, request: Request, object_id: int, payload: dict | None) -> None:
        """Raise the API error that says why this write may not be accepted (404, 403, then
        400 for a payload the object refuses); return if nothing is wrong."""
        raise NotImplementedError

    def post(self, request: Request, **kwargs: Any) -> Response:
        wait = wait_seconds(request)
        object_id = kwargs[self.object_arg]
        valid = self.fast_validate(request.data)
        if valid is None:
            serializer = self.serializer_class(data=request.data)
            if not serializer.is_valid():
                self.explain_refusal(request, object_id, None)  # 404 and 403 come first
                raise ValidationError(serializer.errors)
            data = serializer.validated_data
            valid = self.payload(data), data.get("request_id")
        payload, request_id = valid
        try:
            acceptance = write_request_accept(
                kind=self.kind,
                object_id=object_id,
                payload=payload,
                request_id=request_id,
                requested_by=request.user,
                guard=self.guard,
            )
        except WriteRefused:
            self.explain_refusal(request, object_id, payload)
            raise
        return accepted_response(request, acceptance, wait)


class WriteRequestDetailView(APIView):
    """What happened to an accepted write."""

    @extend_schema(responses={200: WriteRequestSerializer, **ERRORS}, operation_id="request_get")
    def get(self, request: Request, request_id: str) -> Response:
        write = write_request_get(request_id=request_id)
        if write is None:
            raise NotFound(f"no request {request_id!r}")
        if write.requested_by_id != request.user.pk and not owner_or_perm(
            request.user, write, "writes.view_writerequest"
        ):
            raise PermissionDenied("this request was made by another user")
        return Response(WriteRequestSerializer(write).data)
