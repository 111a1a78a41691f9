"""Every API error is JSON with a 4xx status: domain errors are mapped here."""

import logging
from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import status
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
    """DRF's handler, plus domain errors as {"detail", "code"} with 400/403/404/409, and a
    database that cannot be reached as 503 (retry with the same request_id)."""
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
    return exception_handler(exc, context)
