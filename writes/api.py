"""The request log over HTTP: what an accepted write answers, and its status endpoint."""

from __future__ import annotations

import logging
from functools import cache
from typing import Any

from django.db import InterfaceError, OperationalError
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import RETRY_AFTER, error_responses
from core.api_input import StrictCharField, query_integer
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

MAX_WAIT_SECONDS = 10


class RequestIdField(StrictCharField):
    """An optional client idempotency key (letters, digits, . _ : -; 1-100 characters)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            pattern=REQUEST_ID_PATTERN.pattern,
            pattern_rule=f"must be {REQUEST_ID_RULE}",
            required=False,
            max_length=100,
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


# The answers every authenticated read can give besides its 200.
READ_ERRORS = error_responses(401, 403, 404, 406, 503)
# ... and every write (a POST with a JSON body) besides its 2xx.
WRITE_ERRORS = error_responses(
    400,
    401,
    403,
    404,
    406,
    409,
    413,
    415,
    429,
    503,
    e404="the object written (`code` guarded_object_not_found)",
    e409="`request_id` already used for a different write (`code` request_id_conflict)",
)
WAIT_PARAMETER = OpenApiParameter(
    "wait",
    {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS},
    description=f"seconds (an integer from 0 to {MAX_WAIT_SECONDS}, given at most once) to "
    "wait for the outcome: 200 with the final state if known in time, else 202",
)
WRITE_PARAMETERS = [WAIT_PARAMETER, RETRY_AFTER]
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


def wait_seconds(request: Request) -> int:
    """The `?wait=` query parameter: an integer of seconds, 0-10, at most once (0 if absent)."""
    return query_integer(request, "wait", minimum=0, maximum=MAX_WAIT_SECONDS, default=0)


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
    refused (`explain_refusal`: 404 guarded_object_not_found, 403, then 409 for a payload
    the object can never take, in that order of precedence; 404 and 403 come before 400 for
    an invalid body too). Its schema is attached to the class with extend_schema.
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
        409 for a payload the object can never take); return if nothing is wrong."""
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

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "request_id",
                {"type": "string", "pattern": REQUEST_ID_PATTERN.pattern, "maxLength": 100},
                location=OpenApiParameter.PATH,
            ),
            RETRY_AFTER,
        ],
        responses={200: WriteRequestSerializer, **READ_ERRORS},
        operation_id="request_get",
    )
    def get(self, request: Request, request_id: str) -> Response:
        write = write_request_get(request_id=request_id)
        if write is None:
            raise NotFound(f"no request {request_id!r}")
        if write.requested_by_id != request.user.pk and not owner_or_perm(
            request.user, write, "writes.view_writerequest"
        ):
            raise PermissionDenied("this request was made by another user")
        return Response(WriteRequestSerializer(write).data)
