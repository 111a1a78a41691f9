"""The soak: a long run through the API at half the peak rate, with a fault every few
minutes, watching memory, latency and the backlog over time (issue 11).

    python benchmarks/soak.py                          # 30 minutes, a fault every 5
    python benchmarks/soak.py --minutes 2 --fault-every 0.75   # short (not in CI: its time)
    python benchmarks/soak.py --from-json benchmarks/results/soak.json --docs

One stack as docker-compose deploys it (the API, Flower, and --processes elastic partition
worker processes sharing the partitions, restarted when they die), in a fresh database. A
short full-speed run finds the peak rate of the mix (quota consumptions and tag additions
over 8 objects, each request with its own request_id); then wrk offers half of it, in chunks
of --chunk seconds (each chunk's p50/p99). Every --fault-every minutes a fault, in turn:
SIGKILL of the hottest partition's owner, Redis restarted empty, PostgreSQL restarted. Every
second: the pending writes; every 5 seconds: the memory (RSS) of every process of the stack.

At the end, once everything is applied: accepted (202) against final rows (lost), the
invariants (doubled), each process's memory drift over its life (flat: within 10%), p99 of
the first third against the last third (flat), and how long after each fault the backlog
was back to ~0. JSON in benchmarks/results/soak.json; with --docs a chart and a section in
docs/RELIABILITY.md. Exits non-zero if anything was lost or doubled.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SOAK_DB = "racefree_bench_soak"
LOAD_SCRIPT = ROOT / "benchmarks" / "web" / "load.lua"
SECTION = ("<!-- soak -->", "<!-- /soak -->")
CHART = "soak.png"
FAULTS = ("SIGKILL owner", "Redis restart", "PostgreSQL restart")
BACK_TO_ZERO = 20  # pending writes: "~0" (a second's worth of traffic is in flight)


def log(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--fault-every", type=float, default=5.0, help="minutes")
    parser.add_argument("--chunk", type=float, default=30.0, help="seconds per wrk run")
    parser.add_argument("--processes", type=int, default=2, help="partition worker processes")
    parser.add_argument("--docs", action="store_true", help="chart + docs/RELIABILITY.md")
    parser.add_argument("--from-json", metavar="PATH")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        if min(args.minutes, args.fault_every, args.chunk, args.processes) <= 0:
            sys.exit("--minutes, --fault-every, --chunk and --processes must be more than 0")
        results = run(
            minutes=args.minutes,
            fault_every=args.fault_every,
            chunk=min(args.chunk, 30.0),
            processes=args.processes,
        )
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        name = "soak.json" if args.minutes >= 10 else "soak-short.json"
        (out / name).write_text(json.dumps(results, indent=2))
    print(summary_text(results))
    if args.docs:
        chart(results, ROOT / "docs")
        markdown(results, ROOT / "docs" / "RELIABILITY.md")
    if results["audit"]["lost"] or not results["audit"]["invariants_ok"]:
        sys.exit("the soak lost or doubled writes")


def run(*, minutes: float, fault_every: float, chunk: float, processes: int) -> dict[str, Any]:
    from benchmarks.run import _machine, _setup_django

    _setup_django("redis", database=SOAK_DB)
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,localhost"
    from django.conf import settings
    from django.db import connection

    from benchmarks.web.measure import _bench_user, _free_port
    from quotas.services import quota_create
    from tagging.services import image_create
    from workers.supervisor import (
        Supervisor,
        child_environment,
        flower_spec,
        member_specs,
        wait_for_http,
        web_spec,
    )

    user, token = _bench_user()
    quotas = [quota_create(limit=10**12, owner=user) for _ in range(4)]
    images = [image_create(title=f"soak {n}", owner=user) for n in range(4)]
    # The first quota and image are hot: half of the traffic.
    paths = (
        [f"/api/quotas/{quotas[0].pk}/consume/"] * 4
        + [f"/api/quotas/{q.pk}/consume/" for q in quotas[1:]]
        + [f"/api/images/{images[0].pk}/tags/"] * 2
        + [f"/api/images/{i.pk}/tags/" for i in images[1:]]
    )
    hot_key = f"quotas.quota:{quotas[0].pk}"
    port = _free_port()
    stack = Supervisor(
        [
            web_spec(port),
            flower_spec(_free_port()),
            *member_specs(processes),
        ],
        log_dir=ROOT / "var" / "log" / "soak",
        env=child_environment(
            FLOWER_BASIC_AUTH="soak:soak-secret", PYTHONPATH=str(ROOT), LOG_LEVEL="WARNING"
        ),
    )
    stack.start()
    stop_supervising = stack.supervise_in_background()
    base_url = f"http://127.0.0.1:{port}"
    samples: list[dict[str, Any]] = []
    chunks: list[dict[str, Any]] = []
    faults: list[dict[str, Any]] = []
    stop = threading.Event()
    try:
        wait_for_http(f"{base_url}/healthz", timeout=120)
        _wait_owned(settings.WRITE_PARTITIONS, processes, timeout=120)
        log("finding the peak rate of the mix")
        peak = _wrk(base_url, paths, token, seconds=10, rate=None, run_id="peak")
        rate = peak["status_202"] / (peak["duration_us"] / 1e6) / 2
        log(f"peak {rate * 2:.0f}/s: offering {rate:.0f}/s for {minutes:g} minutes")
        started = time.monotonic()
        sampler = threading.Thread(
            target=_sample, args=(stack, samples, started, stop), name="sampler", daemon=True
        )
        sampler.start()
        injector = threading.Thread(
            target=_inject,
            args=(stack, hot_key, faults, started, fault_every * 60, minutes * 60, stop),
            name="faults",
            daemon=True,
        )
        injector.start()
        number = 0
        while time.monotonic() - started < minutes * 60:
            seconds = min(chunk, minutes * 60 - (time.monotonic() - started))
            if seconds < 2:
                break
            number += 1
            begun = time.monotonic() - started
            result = _wrk(base_url, paths, token, seconds=seconds, rate=rate, run_id=f"c{number}")
            chunks.append(
                {"at_s": round(begun, 1), "end_s": round(time.monotonic() - started, 1), **result}
            )
        stop.set()
        injector.join()
        log("load over: waiting for every accepted write to be applied")
        drained = _wait_drained(timeout=300)
        sampler.join()
        connection.close()
        audit = _audit(chunks + [peak], quotas, images)
    finally:
        stop.set()
        stop_supervising.set()
        stack.stop()
    return {
        "machine": _machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "minutes": minutes,
        "fault_every_min": fault_every,
        "worker_processes": processes,
        "peak_per_s": round(rate * 2, 1),
        "offered_per_s": round(rate, 1),
        "chunks": chunks,
        "samples": samples,
        "faults": _recoveries(faults, samples),
        "drained_after_load_s": drained,
        "audit": audit,
        "memory": _memory_drift(samples),
        "latency": _latency_flatness(chunks, faults),
    }


def _wrk(
    base_url: str, paths: list[str], token: str, *, seconds: float, rate: float | None, run_id: str
) -> dict[str, Any]:
    env = {
        **os.environ,
        "BENCH_TOKEN": token,
        "BENCH_THREADS": "2",
        "BENCH_RATE": str(rate or 0),
        "BENCH_PATHS": ",".join(paths),
        "BENCH_RUN": f"{run_id}-{int(time.time())}",
    }
    argv = [
        "wrk",
        "-t2",
        "-c16",
        f"-d{seconds:.0f}s",
        "--timeout",
        "20s",
        "-s",
        str(LOAD_SCRIPT),
        base_url,
    ]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 90)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line.removeprefix("WRKJSON "))
    raise RuntimeError(f"wrk printed no summary: {out.stderr[-1000:]}")


def _wait_owned(partitions: int, processes: int, *, timeout: float) -> None:
    """Until every partition has an owner and all `processes` own some."""
    from writes.selectors import partitions_overview

    deadline = time.monotonic() + timeout
    while True:
        owners = [row["owner"] for row in partitions_overview()["partitions"]]
        if None not in owners and len(set(owners)) == min(processes, partitions):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"partitions not all owned: {owners}")
        time.sleep(0.2)


def _pending() -> int | None:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM writes_writerequest WHERE state = 'pending'")
            return cursor.fetchone()[0]
    except Exception:  # PostgreSQL restarting
        connection.close()
        return None


def _rss_mib(pid: int | None) -> float | None:
    """Resident memory of a process and its descendants (granian's workers, pool
    processes), MiB."""
    if pid is None:
        return None
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return round(total / 1024, 1)


def _sample(stack: Any, samples: list, started: float, stop: threading.Event) -> None:
    from django.db import connection

    tick = 0
    while not stop.is_set() or (_pending() or 0) > 0:
        entry: dict[str, Any] = {"t": round(time.monotonic() - started, 1), "pending": _pending()}
        if tick % 5 == 0:
            entry["rss"] = {
                name: {"pid": stack.pid(name), "mib": _rss_mib(stack.pid(name))}
                for name in stack.children
            }
        samples.append(entry)
        tick += 1
        time.sleep(1)
        if stop.is_set() and time.monotonic() - started > 3600 * 3:
            break
    connection.close()


def _inject(
    stack: Any,
    hot_key: str,
    faults: list,
    started: float,
    every: float,
    total: float,
    stop: threading.Event,
) -> None:
    from django.db import connection

    from stress.faults import (
        owners_sigkill,
        postgresql_can_restart,
        postgresql_restart,
        redis_restart_empty,
    )
    from writes.partitions import partition_for

    number = 0
    while True:
        due = started + every * (number + 1)
        while time.monotonic() < due:
            if stop.is_set():
                return
            time.sleep(0.2)
        if due - started > total - 10:  # leave time to see the recovery
            return
        kind = FAULTS[number % len(FAULTS)]
        number += 1
        begun = time.monotonic() - started
        try:
            if kind == "SIGKILL owner":
                what = owners_sigkill(stack, [partition_for(hot_key)])
            elif kind == "Redis restart":
                what = redis_restart_empty()
            elif postgresql_can_restart():
                what = postgresql_restart()
            else:
                what = "PostgreSQL restart skipped (no pg_ctlcluster)"
        except Exception as exc:
            what = f"{kind} failed: {exc}"
        connection.close()
        faults.append(
            {
                "kind": kind,
                "what": what,
                "at_s": round(begun, 1),
                "end_s": round(time.monotonic() - started, 1),
            }
        )
        log(f"fault: {what}")


def _wait_drained(*, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if _pending() == 0:
            return round(time.monotonic() - started, 1)
        time.sleep(0.5)
    return None


def _audit(runs: list[dict], quotas: list, images: list) -> dict[str, Any]:
    from django.db import connection

    from writes.invariants import invariants_check

    accepted = sum(run["status_202"] + run["status_200"] for run in runs)
    with connection.cursor() as cursor:
        cursor.execute("SELECT state, count(*) FROM writes_writerequest GROUP BY state")
        states = dict(cursor.fetchall())
    final = sum(n for state, n in states.items() if state != "pending")
    report = invariants_check(
        {"quotas.quota": [q.pk for q in quotas], "tagging.image": [i.pk for i in images]}
    )
    return {
        "accepted": accepted,
        "rows_by_state": states,
        # A 202 is a committed row; a row can exist without its 202 (the answer lost in a
        # restart), never the reverse. Lost: 202s without a final row.
        "lost": max(0, accepted - final) + states.get("pending", 0),
        "invariants": report.as_dict(),
        "invariants_ok": report.ok,
    }


def _recoveries(faults: list[dict], samples: list[dict]) -> list[dict]:
    for fault in faults:
        after = [s for s in samples if s["t"] >= fault["end_s"] and s["pending"] is not None]
        back = next((s["t"] for s in after if s["pending"] <= BACK_TO_ZERO), None)
        window = [
            s["pending"]
            for s in samples
            if fault["at_s"] <= s["t"] <= (back or fault["end_s"]) and s["pending"] is not None
        ]
        fault["backlog_peak"] = max(window, default=None)
        fault["back_to_zero_after_s"] = None if back is None else round(back - fault["end_s"], 1)
    return faults


def _memory_drift(samples: list[dict]) -> dict[str, Any]:
    """For every process that lived 5 minutes or more (or the whole run, if shorter), its RSS
    at the end of its life against its RSS once warm (the first tenth of its life skipped)."""
    lives: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for sample in samples:
        for name, value in sample.get("rss", {}).items():
            if value["pid"] and value["mib"]:
                lives.setdefault((name, value["pid"]), []).append((sample["t"], value["mib"]))
    longest = max((points[-1][0] - points[0][0] for points in lives.values()), default=0)
    drifts = {}
    for (name, pid), points in lives.items():
        span = points[-1][0] - points[0][0]
        if span < min(300, longest * 0.8) or len(points) < 4:
            continue
        warm = [mib for t, mib in points if t >= points[0][0] + span / 10]
        drifts[f"{name} (pid {pid})"] = {
            "minutes": round(span / 60, 1),
            "start_mib": warm[0],
            "end_mib": warm[-1],
            "max_mib": max(warm),
            "drift_pct": round(100 * (warm[-1] - warm[0]) / warm[0], 1),
        }
    worst = max((abs(d["drift_pct"]) for d in drifts.values()), default=0.0)
    return {"processes": drifts, "worst_drift_pct": worst, "flat": worst <= 10}


def _latency_flatness(chunks: list[dict], faults: list[dict]) -> dict[str, Any]:
    """p99 of the chunks with no fault in them: the first third against the last third."""
    quiet = [
        c
        for c in chunks
        if not any(f["at_s"] - 1 <= c["end_s"] and f["end_s"] + 10 >= c["at_s"] for f in faults)
    ]
    third = max(1, len(quiet) // 3)
    first = [c["p99_us"] / 1000 for c in quiet[:third]]
    last = [c["p99_us"] / 1000 for c in quiet[-third:]]
    if not first or not last:
        return {"flat": None, "quiet_chunks": len(quiet)}
    a, b = statistics.median(first), statistics.median(last)
    return {
        "quiet_chunks": len(quiet),
        "first_third_p99_ms": round(a, 1),
        "last_third_p99_ms": round(b, 1),
        "change_pct": round(100 * (b - a) / a, 1),
        "flat": b <= a * 1.25 or b - a < 10,
    }


def summary_text(results: dict[str, Any]) -> str:
    audit, memory, latency = results["audit"], results["memory"], results["latency"]
    lines = [
        f"{results['minutes']:g} min at {results['offered_per_s']:.0f}/s "
        f"(peak {results['peak_per_s']:.0f}/s): "
        f"{audit['accepted']:,} accepted, lost {audit['lost']}, invariants "
        f"{'hold' if audit['invariants_ok'] else 'BROKEN'}",
        f"memory: worst drift {memory['worst_drift_pct']}% over "
        f"{len(memory['processes'])} processes "
        f"({'flat' if memory['flat'] else 'NOT flat'})",
        f"p99 without faults: first third {latency.get('first_third_p99_ms')} ms, last third "
        f"{latency.get('last_third_p99_ms')} ms ({'flat' if latency.get('flat') else 'NOT flat'})",
    ]
    for fault in results["faults"]:
        lines.append(
            f"fault at {fault['at_s'] / 60:.1f} min: {fault['what']}; backlog peak "
            f"{fault['backlog_peak']}, back to ~0 after {fault['back_to_zero_after_s']} s"
        )
    return "\n".join(lines)


def chart(results: dict[str, Any], folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, chunks = results["samples"], results["chunks"]
    fig, (top, middle, bottom) = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    pend = [(s["t"] / 60, s["pending"]) for s in samples if s["pending"] is not None]
    top.plot([t for t, _ in pend], [p for _, p in pend], lw=1)
    top.set_ylabel("pending writes")
    middle.step(
        [c["at_s"] / 60 for c in chunks],
        [c["p99_us"] / 1000 for c in chunks],
        where="post",
        label="p99",
    )
    middle.step(
        [c["at_s"] / 60 for c in chunks],
        [c["p50_us"] / 1000 for c in chunks],
        where="post",
        label="p50",
    )
    middle.set_ylabel("latency per chunk, ms")
    middle.set_yscale("log")
    middle.legend(fontsize=8)
    series: dict[str, list[tuple[float, float]]] = {}
    for sample in samples:
        for name, value in sample.get("rss", {}).items():
            if value["mib"]:
                role = (
                    "web"
                    if name == "web"
                    else "flower"
                    if name == "flower"
                    else ("worker " + name.split(".")[1] if "standby" not in name else None)
                )
                if role:
                    series.setdefault(role, []).append((sample["t"] / 60, value["mib"]))
    for role, points in sorted(series.items()):
        bottom.plot([t for t, _ in points], [m for _, m in points], lw=1, label=role)
    bottom.set_ylabel("RSS, MiB")
    bottom.set_xlabel("minutes")
    bottom.legend(fontsize=7, ncol=5)
    for fault in results["faults"]:
        for ax in (top, middle, bottom):
            ax.axvline(fault["at_s"] / 60, color="red", ls=":", lw=1)
        top.annotate(
            fault["kind"],
            (fault["at_s"] / 60, top.get_ylim()[1] * 0.9),
            fontsize=7,
            rotation=90,
            color="red",
        )
    fig.suptitle(
        f"Soak: {results['minutes']:g} min at {results['offered_per_s']:.0f} writes/s "
        f"(half the peak), a fault every {results['fault_every_min']:g} min ({results['started']})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(folder / CHART, dpi=100)
    plt.close(fig)


def markdown(results: dict[str, Any], path: Path) -> None:
    audit, memory, latency = results["audit"], results["memory"], results["latency"]
    refused = sum(chunk["status_other"] + chunk["socket_errors"] for chunk in results["chunks"])
    final = sum(n for state, n in audit["rows_by_state"].items() if state != "pending")
    unanswered = max(0, final - audit["accepted"])
    parts = [
        f"Run {results['started']}: {results['minutes']:g} minutes through the API at "
        f"{results['offered_per_s']:.0f} writes/s (half the peak of the mix, "
        f"{results['peak_per_s']:.0f}/s), a fault every {results['fault_every_min']:g} minutes.\n",
        f"![soak]({CHART})\n",
        f"- accepted **{audit['accepted']:,}**; lost **{audit['lost']}**; invariants "
        f"**{'all hold' if audit['invariants_ok'] else 'BROKEN'}** (no write applied twice: the "
        "ledger agrees with every quota, each quota request has one ledger row, one link per "
        "(image, tag)); everything applied "
        f"{results['drained_after_load_s']} s after the load stopped.",
        f"- answers other than 2xx: **{refused:,}** (503 `unavailable` while a service "
        "restarted: not accepted; a client resends with the same `request_id`); rows without a "
        f"202: {unanswered:,} (committed, but the answer was lost in the restart; the soak "
        "does not resend, so they count as applied rows, never as lost).",
        "- memory: the worst drift of any process over its life is "
        f"**{memory['worst_drift_pct']}%** "
        f"({len(memory['processes'])} processes; flat within 10%: "
        f"{'yes' if memory['flat'] else '**no**'}).",
        f"- p99 of the chunks without a fault: {latency.get('first_third_p99_ms')} ms in the first "
        f"third, {latency.get('last_third_p99_ms')} ms in the last "
        f"({'flat' if latency.get('flat') else '**not flat**'}).",
        "",
        "| fault at (min) | fault | backlog peak | back to ~0 after (s) |",
        "|---|---|---|---|",
    ]
    for fault in results["faults"]:
        parts.append(
            f"| {fault['at_s'] / 60:.1f} | {fault['what']} | {fault['backlog_peak']} | "
            f"{fault['back_to_zero_after_s']} |"
        )
    parts.append(
        "\n| process | minutes | RSS start MiB | end | max | drift |\n|---|---|---|---|---|---|"
    )
    for name, d in sorted(results["memory"]["processes"].items()):
        parts.append(
            f"| {name} | {d['minutes']} | {d['start_mib']} | {d['end_mib']} | {d['max_mib']} | "
            f"{d['drift_pct']:+}% |"
        )
    text = path.read_text()
    start, end = SECTION
    if start not in text:
        text += f"\n## Soak\n\n{start}\n{end}\n"
    before, rest = text.split(start, 1)
    after = rest.split(end, 1)[1]
    path.write_text(f"{before}{start}\n" + "\n".join(parts) + f"\n{end}{after}")


if __name__ == "__main__":
    main()
