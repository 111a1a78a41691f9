"""Content negotiation for a JSON-only API: the common cases without parsing media types.

DRF's DefaultContentNegotiation parses the Accept header into media types on every request
(a twentieth of a small write's web time). With JSON the only renderer, a request that
accepts anything or JSON gets it at once; anything else goes through DRF's own (406)."""

from __future__ import annotations

from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.request import Request

_ANY_OR_JSON = frozenset({"", "*/*", "application/json"})


class JsonFirstNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: list[Any], format_suffix: str | None = None
    ) -> tuple[Any, str]:
        accept = request.META.get("HTTP_ACCEPT", "")
        if format_suffix is None and accept in _ANY_OR_JSON and "format" not in request.GET:
            renderer = renderers[0]
            if renderer.media_type == "application/json":
                return renderer, renderer.media_type
        return super().select_renderer(request, renderers, format_suffix)
