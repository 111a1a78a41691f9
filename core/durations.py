"""Durations as operators write them: "90s", "15m", "2h", "7d", "1w"."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def duration_parse(text: str) -> timedelta:
    """A positive duration such as "3d"; ValueError with a one-line reason otherwise."""
    match = _PATTERN.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not a duration: a number and a unit s, m, h, d or w (3d)")
    amount = float(match.group(1))
    if amount <= 0:
        raise ValueError(f"{text!r}: a duration must be more than 0")
    return timedelta(**{_UNITS[match.group(2)]: amount})
