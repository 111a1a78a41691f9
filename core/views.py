"""Project-level views: health check and JSON error pages for the API."""

from django.db import connection
from django.http import HttpRequest, JsonResponse


def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers (for load balancers and compose health checks)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:
        return JsonResponse({"status": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(
        {"detail": f"no such resource: {request.path}", "code": "not_found"}, status=404
    )


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {"detail": "internal error; it has been logged", "code": "error"}, status=500
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse({"detail": "bad request", "code": "bad_request"}, status=400)
