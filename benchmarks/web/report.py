"""Table, targets, chart and the docs/BENCHMARKS.md section of the HTTP benchmark."""

from __future__ import annotations

from pathlib import Path
from typing import Any

SECTION = ("<!-- http-results -->", "<!-- /http-results -->")
CHART = "bench_http.png"
INLINE = "inline UPDATE (a)"
COLUMNS = (
    ("name", "endpoint", "{}"),
    ("accepted_per_s", "accepted/s", "{:,.0f}"),
    ("applied_per_s", "applied/s", "{:,.0f}"),
    ("backlog", "backlog at end", "{:,}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("idle_p50_ms", "idle p50 ms", "{:.2f}"),
    ("cpu_ms_per_write", "CPU ms/write", "{:.2f}"),
)


def _cell(value: Any, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _row(results: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in results["rows"] if r["name"] == name)


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Issue 10's targets, from this run: (target, measured, met)."""
    inline, ours = _row(results, INLINE), _row(results, "consume/")
    wait = _row(results, "consume/?wait=5")
    half = next(r for r in results["rows"] if r["offered_rate"])
    accepted_x = ours["accepted_per_s"] / inline["accepted_per_s"]
    applied_x = ours["applied_per_s"] / inline["applied_per_s"]
    idle_200 = (wait["idle_statuses"] or {}).get("200", 0)
    idle_total = sum((wait["idle_statuses"] or {}).values())
    return [
        (
            "consume/ accepted and applied >= 1.5x the inline conditional UPDATE, lower p99",
            f"accepted {accepted_x:.2f}x, applied {applied_x:.2f}x; p99 {ours['p99_ms']:.0f} "
            f"vs {inline['p99_ms']:.0f} ms",
            accepted_x >= 1.5 and applied_x >= 1.5 and ours["p99_ms"] < inline["p99_ms"],
        ),
        (
            "moonshot: >= 1,000 writes/s through HTTP (consume/, applied)",
            f"{ours['applied_per_s']:,.0f}/s",
            ours["applied_per_s"] >= 1000,
        ),
        (
            "idle p50 of consume/ <= 3 ms",
            f"{ours['idle_p50_ms']:.2f} ms",
            ours["idle_p50_ms"] <= 3,
        ),
        (
            "idle p50 of consume/?wait= (applied, 200) <= 6 ms",
            f"{wait['idle_p50_ms']:.2f} ms ({idle_200}/{idle_total} answered 200)",
            wait["idle_p50_ms"] <= 6 and idle_200 == idle_total,
        ),
        (
            "?wait= at half its peak rate: p99 <= 100 ms",
            f"p99 {half['p99_ms']:.0f} ms at {half['accepted_per_s']:,.0f}/s "
            f"(offered {half['offered_rate']:,.0f}/s; {half['statuses']['other']:,} not 2xx)",
            half["p99_ms"] <= 100
            and half["statuses"]["other"] == 0
            and half["accepted_per_s"] >= 0.8 * (half["offered_rate"] or 0),
        ),
        (
            "total CPU per write <= 3 ms (consume/)",
            f"{ours['cpu_ms_per_write']:.2f} ms",
            ours["cpu_ms_per_write"] <= 3,
        ),
    ]


def table(results: dict[str, Any]) -> str:
    """Every row, the in-process call and the targets, as plain text."""
    lines = [" | ".join(title for _, title, _ in COLUMNS)]
    for row in results["rows"]:
        lines.append(" | ".join(_cell(row.get(key), fmt) for key, _, fmt in COLUMNS))
    call = results.get("python_call")
    if call:
        lines.append(
            f"python call: accept {call['accept_us']:.0f} us; accept and wait p50 "
            f"{call['accept_and_wait_p50_ms']} ms ({call['accept_and_wait_applied']} applied)"
        )
    if not results.get("smoke"):
        for target, measured, met in targets(results):
            lines.append(f"{'met   ' if met else 'MISSED'} {target}: {measured}")
    return "\n".join(lines)


def chart(results: dict[str, Any], folder: Path) -> None:
    """Writes/s per endpoint (accepted, applied) and CPU per write by process role."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["rows"]
    names = [r["name"] for r in rows]
    ys = range(len(rows))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 0.45 * len(rows) + 1.8), sharey=True)
    left.barh([y - 0.2 for y in ys], [r["accepted_per_s"] for r in rows], 0.4, label="accepted")
    left.barh([y + 0.2 for y in ys], [r["applied_per_s"] for r in rows], 0.4, label="applied")
    left.axvline(_row(results, INLINE)["applied_per_s"], color="black", ls="--", lw=1)
    left.set_yticks(list(ys))
    left.set_yticklabels(names, fontsize=8)
    left.invert_yaxis()
    left.set_xlabel("writes/s (dashed: inline UPDATE)")
    left.legend(fontsize=8)
    roles = sorted({role for r in rows for role in r["cpu_ms_per_write_by_role"]})
    starts = [0.0] * len(rows)
    for role in roles:
        widths = [max(0.0, r["cpu_ms_per_write_by_role"].get(role, 0.0)) for r in rows]
        right.barh(list(ys), widths, 0.6, left=starts, label=role)
        starts = [s + w for s, w in zip(starts, widths, strict=True)]
    right.set_xlabel("CPU ms per write, by process (load generator excluded)")
    right.legend(fontsize=7, loc="lower right")
    fig.suptitle(
        f"HTTP write path, {results['connections']} connections, {results['seconds']:g} s per "
        f"endpoint, {results['machine']['cpus']} CPUs ({results['started']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(folder / CHART, dpi=110)
    plt.close(fig)


def markdown(results: dict[str, Any], path: Path) -> None:
    """Replace the HTTP results section of docs/BENCHMARKS.md."""
    speed = results["machine"].get("python_loop_s")
    parts = [
        f"Run {results['started']} on {results['machine']['cpus']} CPUs"
        + (f" (reference Python loop: {speed} s)" if speed else "")
        + ": wrk "
        f"-t{results['threads']} -c{results['connections']}, {results['seconds']:g} s per "
        f"endpoint, one hot object per endpoint, {results['partitions']} partitions.\n",
        f"![HTTP write path]({CHART})\n",
        "| endpoint | accepted/s | applied/s | backlog at end | p50 ms | p99 ms | idle p50 ms "
        "| CPU ms/write | of which web / PostgreSQL / workers |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        roles = row["cpu_ms_per_write_by_role"]
        split = " / ".join(
            f"{roles.get(role, 0.0):.2f}" for role in ("web", "postgres", "partition workers")
        )
        parts.append(
            "| " + " | ".join(_cell(row.get(key), fmt) for key, _, fmt in COLUMNS) + f" | {split} |"
        )
    call = results.get("python_call")
    if call:
        parts.append(
            f"\nThe Python call of a user's own view (`quota_consume_enqueue`), in-process, "
            f"same stack: **{call['accept_us']:.0f} µs** per accepted write (durable on "
            f"return); with `wait=5`, p50 **{call['accept_and_wait_p50_ms']} ms** to the "
            f"outcome ({call['accept_and_wait_applied']} applied in time).\n"
        )
    if not results.get("smoke"):
        parts.append("**Targets** (issue 10; ratios from this one run)\n")
        parts.append("| target | measured | |\n|---|---|---|")
        for target, measured, met in targets(results):
            parts.append(f"| {target} | {measured} | {'met' if met else '**missed**'} |")
    text = path.read_text()
    start, end = SECTION
    if start not in text:
        text += f"\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{start}\n" + "\n".join(parts) + f"\n{end}{after}")
