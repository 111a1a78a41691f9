"""Table, targets, chart and docs/BENCHMARKS.md section of the HTTP benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = (
    ("name", "endpoint", "{}"),
    ("accepted_per_s", "accepted/s", "{:,.0f}"),
    ("applied_per_s", "applied/s", "{:,.0f}"),
    ("backlog", "backlog", "{:,}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("idle_p50_ms", "idle p50 ms", "{:.2f}"),
    ("cpu_ms_per_write", "CPU ms/write", "{:.2f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def table(results: dict[str, Any]) -> str:
    """A plain-text table of every row."""
    lines = [" | ".join(title for _, title, _ in COLUMNS)]
    for row in results["rows"]:
        lines.append(" | ".join(_cell(row.get(key), fmt) for key, _, fmt in COLUMNS))
    call = results.get("python_call")
    if call:
        lines.append(f"python call: accept {call['accept_us']:.0f} us")
    return "\n".join(lines)


def chart(results: dict[str, Any], docs: Path) -> None:  # filled in with the docs section
    pass


def markdown(results: dict[str, Any], path: Path) -> None:
    pass
