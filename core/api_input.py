"""Strict typed input for the API: a JSON value is taken as the type it is, never coerced.

DRF's fields are lenient: `IntegerField` takes "5" and 5.0, `CharField` takes 0 as "0".
The fields here refuse any JSON type but their own (a boolean is not an integer either), so
that what the OpenAPI schema declares is exactly what the server accepts; each refusal is a
400 with a JSON reason (core/api_errors.py). Every constraint is given to DRF as a field
argument or a validator, which drf-spectacular turns into the schema (minimum, maximum,
minLength, maxLength, pattern, minItems, maxItems).

Unknown body fields stay ignored (DRF's serializers drop them): the schema never says
`additionalProperties: false`.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.validators import RegexValidator
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

WRONG_TYPE = "wrong_type"

_JSON_TYPES = {
    bool: "a boolean",
    int: "an integer",
    float: "a number with a fraction or exponent",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def json_type_name(value: object) -> str:
    """How a parsed JSON value's type reads in an error message ("a string", "null", ...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only: no string ("5"), no float (5.0), no boolean."""

    default_error_messages = {WRONG_TYPE: "must be a JSON integer, got {got}"}

    def to_internal_value(self, data: Any) -> int:
        if type(data) is not int:
            self.fail(WRONG_TYPE, got=json_type_name(data))
        return data


class FullMatchRegexValidator(RegexValidator):
    """A RegexValidator matching the whole value (`$` alone would let a final newline
    through); drf-spectacular declares its pattern."""

    def __call__(self, value: Any) -> None:
        if not isinstance(value, str) or self.regex.fullmatch(value) is None:
            raise ValidationError(self.message, code=self.code)


class StrictCharField(serializers.CharField):
    """A JSON string only: no number (0 is not "0"), no boolean. With `pattern`, the whole
    string must match it (declared in the schema as `pattern`)."""

    default_error_messages = {WRONG_TYPE: "must be a JSON string, got {got}"}

    def __init__(self, *, pattern: str | None = None, pattern_rule: str = "", **kwargs: Any):
        # As given: " x" is not "x" (a schema's maxLength and pattern judge the raw string).
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)
        if pattern is not None:
            self.validators.append(
                FullMatchRegexValidator(pattern, message=pattern_rule or f"must match {pattern}")
            )

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail(WRONG_TYPE, got=json_type_name(data))
        return super().to_internal_value(data)


_INTEGER = re.compile(r"-?[0-9]{1,20}")


def query_integer(request: Request, name: str, *, minimum: int, maximum: int, default: int) -> int:
    """A query parameter that is an integer in minimum…maximum, given at most once (else a
    400 naming it); `default` when absent."""
    values = request.query_params.getlist(name)
    if not values:
        return default
    rule = f"must be an integer from {minimum} to {maximum}, given at most once"
    if len(values) > 1 or _INTEGER.fullmatch(values[0]) is None:
        raise ValidationError({name: [rule]}, code="invalid")
    value = int(values[0])
    if not minimum <= value <= maximum:
        raise ValidationError({name: [rule]}, code="out_of_range")
    return value
