"""Every API error is JSON with a 4xx status (or 503): `{"detail", "code"}`, plus, for invalid
input, the field errors (`{"field": ["reason"]}`) beside them. Domain errors are mapped here.
`error_responses` declares these answers in the OpenAPI schema."""

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from core.errors import Conflict, DomainError, Forbidden, ObjectNotFound

logger = logging.getLogger(__name__)

_STATUS = {
    ObjectNotFound: status.HTTP_404_NOT_FOUND,
    Forbidden: status.HTTP_403_FORBIDDEN,
    Conflict: status.HTTP_409_CONFLICT,
}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus domain errors as {"detail", "code"} with 400/403/404/409, a
    database that cannot be reached as 503 (retry with the same request_id), and a `detail`
    and a `code` in every error body."""
    if isinstance(exc, DomainError):
        code = next((s for cls, s in _STATUS.items() if isinstance(exc, cls)), 400)
        return Response({"detail": exc.message, "code": exc.code}, status=code)
    if isinstance(exc, OperationalError | InterfaceError):
        logger.warning("database unavailable: %s", exc)
        response = Response(
            {
                "detail": (
                    "the database is unavailable; retry shortly with the same request_id "
                    "(a write that did get recorded is not applied twice)"
                ),
                "code": "unavailable",
            },
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "1"
        return response
    response = exception_handler(exc, context)
    if response is not None and isinstance(exc, APIException):
        response.data = error_body(exc, response.data)
    return response


def error_body(exc: APIException, data: Any) -> dict[str, Any]:
    """`{"detail", "code"}` for any DRF error; a validation error keeps its field errors
    beside them, and its `detail` names the first one ("amount: must be ...")."""
    if not isinstance(exc, ValidationError):
        detail = data.get("detail", data) if isinstance(data, dict) else data
        return {"detail": str(detail), "code": _first(exc.get_codes()) or exc.default_code}
    path, message = _first_error(exc.detail)
    body = dict(data) if isinstance(data, dict) else {}
    body["detail"] = f"{path}: {message}" if path else str(message)
    body["code"] = getattr(message, "code", None) or exc.default_code
    return body


def _first(codes: Any) -> str | None:
    while isinstance(codes, dict | list):
        if not codes:
            return None
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return codes


def _first_error(detail: Any, path: str = "") -> tuple[str, Any]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            if key == "non_field_errors":
                return _first_error(value, path)
            return _first_error(value, f"{path}.{key}" if path else str(key))
    if isinstance(detail, list):
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                if value:
                    return _first_error(value, f"{path}[{index}]")
                continue
            return path, value
        return path, "invalid"
    return path, detail


class ApiErrorSerializer(serializers.Serializer):
    """The body of every error answer."""

    detail = serializers.CharField(help_text="what is wrong, for people")
    code = serializers.CharField(
        help_text="what is wrong, for programs: a DRF code (`required`, `wrong_type`, "
        "`max_value`, `not_authenticated`, `throttled`, ...) or a domain code "
        "(`guarded_object_not_found`, `amount_above_limit`, `request_id_conflict`, "
        "`conflict`, `unavailable`, ...); invalid input also carries its field errors "
        '(`{"field": ["reason"]}`) beside these two'
    )


# What each status means, wherever it is declared.
_MEANING = {
    400: "invalid input: `detail` and `code`, and the field errors",
    401: "no token, or a token that is not valid",
    403: "not allowed to do this to this object",
    404: "no such object",
    406: "the Accept header asks for something other than JSON",
    409: "a conflict (see `code`)",
    413: "request body larger than API_MAX_BODY_BYTES",
    415: "request body is not JSON",
    429: "too many writes: retry after `Retry-After` seconds",
    503: "the database is unavailable: retry after `Retry-After` seconds with the same request_id",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    OpenApiTypes.INT,
    location=OpenApiParameter.HEADER,
    response=[429, 503],
    description="seconds to wait before retrying",
)


def error_responses(*statuses: int, **meanings: str) -> dict[int, OpenApiResponse]:
    """The schema's error answers: each with ApiErrorSerializer as its body. A meaning given
    as `e409="..."` replaces the general one."""
    return {
        code: OpenApiResponse(
            ApiErrorSerializer, description=meanings.get(f"e{code}", _MEANING[code])
        )
        for code in statuses
    }
