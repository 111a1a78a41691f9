"""Side-by-side benchmark, one run on one machine (ratios, not absolute numbers, are the point).

    python benchmarks/run.py            # both brokers, full sizes (~20 min on 2 cores)
    python benchmarks/run.py --smoke    # tiny sizes: proves every part works (CI)
    python benchmarks/run.py --from-json benchmarks/results/latest.json --docs  # re-render

Per broker (Redis, RabbitMQ), in a fresh database `racefree_bench`:
1. the physical floor: raw psycopg clients running the single-row conditional UPDATE on one
   hot row (as pgbench would), for 1, 2 and 4 clients;
2. a no-op Celery task drained by the same number of workers;
3. every `manage.py stress` strategy on the same hot-key quota workload and on a tag workload;
4. the drain alone: N pending requests on one hot quota applied by one partition worker, with
   the worker's memory sampled throughout.
Plus coalesced latency at half its peak rate (both brokers) and throughput by number of
workers (Redis).

Prints a table with throughput, p99 latency and ratios (strategy / raw floor, / no-op Celery,
/ lock), writes JSON to benchmarks/results/, PNG charts and the results section of
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make the project importable
BROKERS = {
    "redis": "redis://127.0.0.1:6379/2",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}
BENCH_DB = "racefree_bench"
HTTP_BENCH_DB = "racefree_bench_http"
SIZES = {
    "full": {
        "raw_seconds": 5,
        "noop": 6000,
        "requests": 4000,
        "drain": 100_000,
        "sweep": (1, 2, 4),
        "batch": 100,
        "scenarios": ("quota", "tags"),
    },
    # Proves every part works in about a minute (CI): no sweep, the quota scenario only.
    "smoke": {
        "raw_seconds": 1,
        "noop": 200,
        "requests": 200,
        "drain": 2000,
        "sweep": (),
        "batch": 20,
        "scenarios": ("quota",),
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to prove it works")
    parser.add_argument("--brokers", default="redis,rabbitmq")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument(
        "--docs",
        action="store_true",
        help="write charts and the results section of docs/BENCHMARKS.md",
    )
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: print (and with --docs, draw) the report of a saved run",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="the HTTP benchmark instead: every write endpoint next to the inline baselines, "
        "loaded by wrk (benchmarks/results/http.json)",
    )
    parser.add_argument("--one-broker", help=argparse.SUPPRESS)  # internal: child run
    args = parser.parse_args()
    if args.http:
        _http(args)
        return
    if args.from_json:
        _report(json.loads(Path(args.from_json).read_text()), docs=args.docs)
        return
    if args.one_broker:
        _setup_django(args.one_broker)
        from benchmarks import measure

        result = measure.run_all(
            broker=args.one_broker,
            sizes=SIZES["smoke" if args.smoke else "full"],
            workers=args.workers,
            producers=args.producers,
            sweep=args.one_broker == "redis"
            and bool(SIZES["smoke" if args.smoke else "full"]["sweep"]),
        )
        print(json.dumps(result))
        return

    results = {
        "machine": _machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "smoke": args.smoke,
        "brokers": {},
    }
    for broker in args.brokers.split(","):
        print(f"== {broker} ==", file=sys.stderr, flush=True)
        command = [
            sys.executable,
            str(Path(__file__)),
            "--one-broker",
            broker,
            "--workers",
            str(args.workers),
            "--producers",
            str(args.producers),
        ]
        if args.smoke:
            command.append("--smoke")
        child = subprocess.run(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        if child.returncode != 0:
            sys.exit(f"the {broker} run failed")
        results["brokers"][broker] = json.loads(child.stdout.strip().splitlines()[-1])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "smoke.json" if args.smoke else "latest.json"
    (out / name).write_text(json.dumps(results, indent=2))
    _report(results, docs=args.docs)


def _report(results: dict, *, docs: bool) -> None:
    from benchmarks import report

    print(report.table(results))
    if docs:
        report.charts(results, ROOT / "docs")
        report.markdown(results, ROOT / "docs" / "BENCHMARKS.md")
    failed = report.failed_invariants(results)
    if failed:
        sys.exit(f"invariants broken in: {failed}")


def _http(args: argparse.Namespace) -> None:
    from benchmarks.web import report

    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
    else:
        _setup_django("redis", "benchmarks.web.settings", database=HTTP_BENCH_DB)
        from benchmarks.web import measure

        results = {
            "machine": _machine(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "smoke": args.smoke,
            **measure.run_all(
                seconds=1 if args.smoke else 15, idle_requests=10 if args.smoke else 200
            ),
        }
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / ("http-smoke.json" if args.smoke else "http.json")).write_text(
            json.dumps(results, indent=2)
        )
    print(report.table(results))
    if args.docs:
        report.chart(results, ROOT / "docs")
        report.markdown(results, ROOT / "docs" / "BENCHMARKS.md")


def _setup_django(
    broker: str, settings_module: str = "project.settings.local", *, database: str = BENCH_DB
) -> None:
    """Configure Django for a benchmark run in a database of its own, created afresh: every
    run starts from the same empty tables (a request log left by earlier runs, with its dead
    rows, would slow the next one; this machine's PostgreSQL runs without autovacuum)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    os.environ["CELERY_BROKER_URL"] = BROKERS[broker]
    os.environ["REDIS_URL"] = "redis://127.0.0.1:6379/3"
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{database}"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _machine() -> dict[str, object]:
    import platform

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        # This machine's speed drifts by half from hour to hour (a shared host): a fixed
        # piece of Python, timed at the start, tells runs apart. Compare ratios within a run.
        "python_loop_s": _python_loop_seconds(),
    }


def _python_loop_seconds() -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(2_000_000):
            total += i * i
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


if __name__ == "__main__":
    main()
