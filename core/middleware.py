"""Request-level guards that must answer before Django parses a body."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

_DRAIN_AT_MOST = 1024 * 1024


class RequestBodyLimitMiddleware:
    """Answer 413 with a JSON reason when a request body is larger than API_MAX_BODY_BYTES."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.API_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(
                {"detail": "invalid Content-Length header", "code": "invalid"}, status=400
            )
        if length > limit:
            self._discard_body(request, length)
            response = JsonResponse(
                {
                    "detail": f"request body of {length} bytes is larger than {limit} bytes",
                    "code": "too_large",
                },
                status=413,
            )
            response["Connection"] = "close"
            return response
        return self.get_response(request)

    @staticmethod
    def _discard_body(request: HttpRequest, length: int) -> None:
        # Read (and drop) a moderately large body, so the client is not reset mid-upload and
        # does get the 413; beyond _DRAIN_AT_MOST the connection is simply closed.
        stream = request.META.get("wsgi.input")
        left = min(length, _DRAIN_AT_MOST)
        while stream is not None and left > 0:
            chunk = stream.read(min(left, 65536))
            if not chunk:
                break
            left -= len(chunk)
