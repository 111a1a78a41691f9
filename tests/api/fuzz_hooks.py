"""schemathesis hooks of tests/api/test_fuzz.py (loaded through SCHEMATHESIS_HOOKS).

The schema declares every limit a JSON Schema can hold compactly; one it cannot is stated in
the field's description instead: a tag name's Unicode rules (no format, private-use or
unassigned character; at most 64 characters after NFKC and case folding). Generated tag
writes whose names break only that rule are left out, so that `positive_data_acceptance`
judges what the schema does say. Nothing else is filtered."""

from __future__ import annotations

import os
import re

import django
import schemathesis

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings.test")
django.setup()

from core.errors import InvalidInput  # noqa: E402
from tagging.api import TAG_NAME_PATTERN  # noqa: E402
from tagging.models import TAG_NAME_MAX_LENGTH  # noqa: E402
from tagging.services import tag_name_normalize  # noqa: E402

_DECLARED = re.compile(TAG_NAME_PATTERN)


def _beyond_the_schema(name: object) -> bool:
    """A name the schema allows that the server refuses by its undeclared Unicode rules."""
    if not isinstance(name, str) or len(name) > TAG_NAME_MAX_LENGTH:
        return False
    if _DECLARED.fullmatch(name) is None:
        return False
    try:
        tag_name_normalize(name)
    except InvalidInput:
        return True
    return False


@schemathesis.hook
def filter_body(ctx, body) -> bool:
    if ctx.operation is None or "/tags/" not in ctx.operation.path:
        return True
    tags = body.get("tags") if isinstance(body, dict) else None
    return not (isinstance(tags, list) and any(_beyond_the_schema(name) for name in tags))
