"""Tables, ratios, targets, charts and the docs/BENCHMARKS.md results for benchmarks/run.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ORDER = ["naive", "lock", "serializable", "atomic", "partitioned", "coalesced", "coalesced-batched"]
LABELS = {"coalesced-batched": "coalesced, batched acceptance"}


def rows(broker: dict[str, Any], scenario: str) -> list[dict[str, Any]]:
    """One row per strategy with its ratios to the floor, the no-op task and `lock`."""
    floor = broker["raw_floor"]["throughput"]
    noop = broker["noop"]["throughput"]
    runs = broker["strategies"][scenario]
    lock = runs["lock"]["throughput"]
    out = []
    for name in ORDER:
        run = runs[name]
        rate = run["throughput"]
        out.append(
            {
                "strategy": LABELS.get(name, name),
                "throughput": rate,
                "p99_ms": run["latency_ms"].get("p99"),
                "x_floor": rate / floor if floor else None,
                "x_noop": rate / noop if noop else None,
                "x_lock": rate / lock if lock else None,
                "errors": run["failures"],
                "error_kinds": run["errors"],
                "messages": run["messages"],
                "requests": run["requests"],
                "invariants_ok": run["invariants_ok"],
            }
        )
    return out


def targets(broker: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """The issue's targets: (target, measured, met)."""
    floor = broker["raw_floor"]["throughput"]
    noop = broker["noop"]["throughput"]
    one_worker = broker["noop_one_worker"]["throughput"]
    quota = broker["strategies"]["quota"]
    drain = broker["drain"]
    coalesced, lock = quota["coalesced"], quota["lock"]
    batched, partitioned = quota["coalesced-batched"], quota["partitioned"]
    half = broker["half_peak"]
    memory = drain.get("memory_change_pct")
    return [
        (
            "drain alone >= 2x the raw single-row UPDATE floor",
            f"{drain['throughput']:.0f}/s vs {floor:.0f}/s = {drain['throughput'] / floor:.1f}x",
            drain["throughput"] >= 2 * floor,
        ),
        (
            "coalesced end to end >= 3x the no-op Celery drain rate (one write per acceptance)",
            f"{coalesced['throughput']:.0f}/s vs {noop:.0f}/s = "
            f"{coalesced['throughput'] / noop:.1f}x",
            coalesced["throughput"] >= 3 * noop,
        ),
        (
            "coalesced end to end >= 3x the no-op Celery drain rate (batched acceptance)",
            f"{batched['throughput']:.0f}/s vs {noop:.0f}/s = {batched['throughput'] / noop:.1f}x",
            batched["throughput"] >= 3 * noop,
        ),
        (
            "coalesced end to end >= 5x lock (one write per acceptance)",
            f"{coalesced['throughput'] / lock['throughput']:.1f}x",
            coalesced["throughput"] >= 5 * lock["throughput"],
        ),
        (
            "coalesced end to end >= 5x lock (batched acceptance)",
            f"{batched['throughput'] / lock['throughput']:.1f}x",
            batched["throughput"] >= 5 * lock["throughput"],
        ),
        (
            "coalesced: 0 errors",
            f"{sum(coalesced['errors'].values())} errors",
            not coalesced["errors"] and not batched["errors"],
        ),
        (
            "coalesced p99 acceptance -> commit < 100 ms at half the peak rate",
            f"p99 {half['latency_ms'].get('p99')} ms at {half['throughput']:.0f}/s",
            (half["latency_ms"].get("p99") or 1e9) < 100,
        ),
        (
            "partitioned (one message per write) >= 85% of the no-op Celery rate",
            f"{partitioned['throughput']:.0f}/s vs {noop:.0f}/s = "
            f"{100 * partitioned['throughput'] / noop:.0f}%",
            partitioned["throughput"] >= 0.85 * noop,
        ),
        (
            "(context) partitioned vs the no-op task on one worker (one hot object = one "
            "partition = one worker)",
            f"{partitioned['throughput']:.0f}/s vs {one_worker:.0f}/s = "
            f"{100 * partitioned['throughput'] / one_worker:.0f}%",
            partitioned["throughput"] >= 0.85 * one_worker,
        ),
        (
            "a worker's memory flat (+-10%) over the drain",
            f"{memory}% ({drain['requests']} requests)" if memory is not None else "not sampled",
            memory is not None and abs(memory) <= 10,
        ),
    ]


def table(results: dict[str, Any]) -> str:
    lines = []
    for name, broker in results["brokers"].items():
        floor, noop = broker["raw_floor"], broker["noop"]
        lines.append(
            f"\n{name}: raw floor {floor['throughput']:.0f}/s (p99 {floor['p99_ms']} "
            f"ms), no-op Celery {noop['throughput']:.0f}/s, drain alone "
            f"{broker['drain']['throughput']:.0f}/s"
        )
        for scenario in broker["strategies"]:
            lines.append(f"  {scenario}:")
            lines.append(
                f"  {'strategy':32} {'writes/s':>9} {'p99 ms':>9} {'x floor':>8} "
                f"{'x noop':>7} {'x lock':>7} {'errors':>7}  invariants"
            )
            for row in rows(broker, scenario):
                lines.append(
                    f"  {row['strategy']:32} {row['throughput']:9.0f} "
                    f"{_num(row['p99_ms']):>9} {_num(row['x_floor']):>8} "
                    f"{_num(row['x_noop']):>7} {_num(row['x_lock']):>7} {row['errors']:7d}  "
                    f"{'hold' if row['invariants_ok'] else 'BROKEN'}"
                )
        lines.append("  targets:")
        for target, measured, met in targets(broker):
            lines.append(f"    [{'met' if met else 'MISSED'}] {target}: {measured}")
    return "\n".join(lines)


def failed_invariants(results: dict[str, Any]) -> list[str]:
    """Strategies other than naive whose invariants broke (naive is expected to)."""
    failed = []
    for name, broker in results["brokers"].items():
        for scenario, runs in broker["strategies"].items():
            for strategy, run in runs.items():
                if strategy == "naive":
                    if not run["broke"]:
                        failed.append(f"{name}/{scenario}/naive did not break")
                elif run["broke"]:
                    failed.append(f"{name}/{scenario}/{strategy}")
    return failed


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if value < 10 else f"{value:.0f}"


def charts(results: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    brokers = list(results["brokers"])
    scenarios = list(results["brokers"][brokers[0]]["strategies"])
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6.5 * len(scenarios), 4.8), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        width = 0.8 / len(brokers)
        for i, name in enumerate(brokers):
            data = rows(results["brokers"][name], scenario)
            xs = [x + i * width for x in range(len(data))]
            ax.bar(xs, [r["throughput"] for r in data], width, label=name)
        ax.set_xticks([x + width * (len(brokers) - 1) / 2 for x in range(len(ORDER))])
        ax.set_xticklabels(
            [LABELS.get(n, n).replace(", ", "\n") for n in ORDER],
            rotation=30,
            ha="right",
            fontsize=8,
        )
        first = results["brokers"][brokers[0]]
        ax.axhline(
            first["raw_floor"]["throughput"], color="black", ls="--", lw=1, label="raw UPDATE floor"
        )
        ax.axhline(
            first["noop"]["throughput"], color="gray", ls=":", lw=1, label="no-op Celery drain"
        )
        ax.set_yscale("log")
        ax.set_ylabel("writes/s (log)")
        ax.set_title(
            f"{scenario}: one hot object, {first['producers']} producers, "
            f"{first['workers']} workers"
        )
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "bench_throughput.png", dpi=110)
    plt.close(fig)

    redis = results["brokers"].get("redis")
    if redis and redis.get("sweep"):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        for strategy, by_workers in redis["sweep"].items():
            counts = sorted(by_workers, key=int)
            ax.plot(
                [int(c) for c in counts],
                [by_workers[c]["throughput"] for c in counts],
                marker="o",
                label=strategy,
            )
        ax.set_xlabel("workers")
        ax.set_ylabel("writes/s")
        ax.set_title("quota, one hot object, Redis: throughput by workers")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / "bench_workers.png", dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4.2))
    data = rows(results["brokers"][brokers[0]], "quota")
    runs = results["brokers"][brokers[0]]["strategies"]["quota"]
    xs = range(len(data))
    ax.bar(
        [x - 0.2 for x in xs],
        [runs[n]["latency_ms"].get("p50", 0) for n in ORDER],
        0.4,
        label="p50",
    )
    ax.bar(
        [x + 0.2 for x in xs],
        [runs[n]["latency_ms"].get("p99", 0) for n in ORDER],
        0.4,
        label="p99",
    )
    ax.set_xticks(list(xs))
    ax.set_xticklabels(
        [LABELS.get(n, n).replace(", ", "\n") for n in ORDER], rotation=30, ha="right", fontsize=8
    )
    ax.set_yscale("log")
    ax.set_ylabel("acceptance -> commit, ms (log)")
    ax.set_title(f"quota, {brokers[0]}: latency at full load")
    ax.legend()
    fig.tight_layout()
    fig.savefig(folder / "bench_latency.png", dpi=110)
    plt.close(fig)


def markdown(results: dict[str, Any], path: Path) -> None:
    """Replace the generated section of docs/BENCHMARKS.md with these results."""
    parts = [
        f"Run {results['started']} on {results['machine']['cpus']} CPUs, Python "
        f"{results['machine']['python']}.\n"
    ]
    for name, broker in results["brokers"].items():
        floor, noop, drain = broker["raw_floor"], broker["noop"], broker["drain"]
        parts.append(f"### {name}\n")
        parts.append(
            "- raw floor (psycopg, one hot row): "
            + ", ".join(
                f"{c} client(s) {v['throughput']:.0f}/s" for c, v in floor["by_clients"].items()
            )
            + f"; p99 {floor['p99_ms']} ms\n"
            f"- no-op Celery task, {broker['workers']} solo workers: "
            f"{noop['throughput']:.0f} messages/s (one worker: "
            f"{broker['noop_one_worker']['throughput']:.0f}/s)\n"
            f"- drain alone, {drain['requests']} pending on one hot quota, one worker: "
            f"{drain['throughput']:.0f} writes/s; worker RSS "
            f"{drain['memory_kib']['before']:,} KiB before, at most "
            f"{drain['memory_kib']['max']:,} KiB during ({drain['memory_change_pct']:+}%)\n"
        )
        for scenario in broker["strategies"]:
            parts.append(
                f"\n**{scenario}**, one hot object, {broker['producers']} producer "
                f"processes, {broker['workers']} workers\n"
            )
            parts.append(
                "| strategy | writes/s | p99 ms | x floor | x no-op | x lock | "
                "errors | messages | invariants |\n|---|---|---|---|---|---|---|---|---|"
            )
            for row in rows(broker, scenario):
                kinds = ", ".join(f"{k} {v}" for k, v in row["error_kinds"].items()) or "0"
                parts.append(
                    f"| {row['strategy']} | {row['throughput']:.0f} | {_num(row['p99_ms'])} | "
                    f"{_num(row['x_floor'])} | {_num(row['x_noop'])} | {_num(row['x_lock'])} | "
                    f"{kinds} | {row['messages']} / {row['requests']} | "
                    f"{'hold' if row['invariants_ok'] else '**broken**'} |"
                )
        parts.append("\n**Targets**\n\n| target | measured | |\n|---|---|---|")
        for target, measured, met in targets(broker):
            parts.append(f"| {target} | {measured} | {'met' if met else '**missed**'} |")
        parts.append("")
    text = path.read_text()
    start, end = "<!-- results -->", "<!-- /results -->"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{start}\n" + "\n".join(parts) + f"\n{end}{after}")
