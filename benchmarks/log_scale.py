"""The request log at scale: 5 million rows (issue 11).

    python benchmarks/log_scale.py            # 5,000,000 rows (about 10 minutes)
    python benchmarks/log_scale.py --rows 200000 --smoke

In a fresh database `racefree_bench_scale`: a log of ROWS request rows over 30 days of
acceptance times, 8 partitions, all final but 10,000 pending. Then:

1. EXPLAIN (ANALYZE, BUFFERS) of what a scrape of /metrics and `writes_status` run (pending
   and oldest per partition; the counters), of a drain's scan, and of one retention batch:
   they must read the pending-rows index or the counters table, never the final rows;
2. retention while writes flow: one thread accepts writes one at a time (as the API does)
   and times each acceptance, first alone, then while `write_requests_prune` deletes every
   final row older than 7 days in batches; the acceptance latency must not move (no long
   lock), and the prune's rate is reported.

Writes benchmarks/results/log_scale.json and prints a summary; the figures go to
docs/OPERATIONS.md by hand (they are one-off measurements, not a regression benchmark).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCALE_DB = "racefree_bench_scale"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--smoke", action="store_true", help="small, to prove it runs")
    args = parser.parse_args()
    if args.rows < 20_000:
        sys.exit("--rows must be at least 20000 (10,000 of them stay pending)")
    from benchmarks.run import _setup_django

    _setup_django("redis", database=SCALE_DB)
    out = {"rows": args.rows, **_fill(args.rows), "plans": _plans()}
    out["retention"] = _retention_while_writing(seconds=3 if args.smoke else 15)
    path = (
        ROOT
        / "benchmarks"
        / "results"
        / ("log_scale-smoke.json" if args.smoke else "log_scale.json")
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps({k: v for k, v in out.items() if k != "plans"}, indent=2))
    for name, plan in out["plans"].items():
        print(f"\n== {name}\n{plan['text']}")


def _log(text: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


def _fill(rows: int) -> dict:
    from django.db import connection

    _log(f"filling the log with {rows:,} rows")
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")  # one statement builds the whole log
        cursor.execute(
            "INSERT INTO writes_writerequest (request_id, kind, object_key, partition, payload, "
            "state, result, accepted_at, finished_at, applied_seq, applied_by, attempts) "
            "SELECT 'scale-' || n, 'quotas.consume', 'quotas.quota:' || (n %% 5000), n %% 8, "
            "'{\"amount\": 1}', CASE WHEN n > %s THEN 'pending' ELSE 'applied' END, "
            'CASE WHEN n > %s THEN \'{}\' ELSE \'{"kind": "consume", "delta": -1, '
            '"amount": 1, "remaining": 1000}\' END::jsonb, '
            "now() - interval '30 days' + (n * interval '30 days' / %s), "
            "CASE WHEN n > %s THEN NULL "
            "ELSE now() - interval '30 days' + (n * interval '30 days' / %s) END, "
            "CASE WHEN n > %s THEN NULL ELSE n END, '', 0 "
            "FROM generate_series(1, %s) AS n",
            [rows - 10_000] * 2 + [rows] + [rows - 10_000] + [rows] + [rows - 10_000] + [rows],
        )
        cursor.execute("VACUUM (ANALYZE) writes_writerequest")
        cursor.execute("SELECT pg_total_relation_size('writes_writerequest')")
        size = cursor.fetchone()[0]
        cursor.execute("RESET statement_timeout")
    seconds = time.monotonic() - started
    _log(f"filled in {seconds:.0f}s: {size / 2**20:,.0f} MiB with indexes")
    return {"fill_seconds": round(seconds, 1), "table_mib": round(size / 2**20, 1)}


def _plans() -> dict:
    from django.db import connection

    from writes.counters import counter_totals  # noqa: F401  (the query below is its own)

    statements = {
        "metrics: pending and oldest per partition": (
            "SELECT partition, count(*), EXTRACT(EPOCH FROM now() - min(accepted_at)) "
            "FROM writes_writerequest WHERE state = 'pending' GROUP BY partition",
            [],
        ),
        "metrics: counters": (
            "SELECT name, sum(value) FROM writes_writecounter GROUP BY name",
            [],
        ),
        "drain: scan of a partition": (
            "SELECT id, object_key, retry_at FROM writes_writerequest WHERE partition = %s "
            "AND state = 'pending' AND NOT (object_key = ANY(%s::text[])) ORDER BY id LIMIT %s",
            [3, [], 2000],
        ),
        "retention: one batch of a partition": (
            "DELETE FROM writes_writerequest WHERE id IN (SELECT id FROM writes_writerequest "
            "WHERE partition = %s AND accepted_at < now() - interval '7 days' "
            "AND state <> 'pending' ORDER BY accepted_at LIMIT %s)",
            [3, 1000],
        ),
    }
    plans = {}
    with connection.cursor() as cursor:
        for name, (sql, params) in statements.items():
            cursor.execute("BEGIN")
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}", params)
            text = "\n".join(row[0] for row in cursor.fetchall())
            cursor.execute("ROLLBACK")  # the DELETE's plan is measured, not kept
            plans[name] = {"text": text}
    return plans


def _retention_while_writing(*, seconds: float) -> dict:
    from django.db import connection

    from quotas.services import KIND_CONSUME, quota_create
    from writes.services import write_request_accept, write_requests_prune

    quota = quota_create(limit=10**12)
    latencies: dict[str, list[float]] = {"alone": [], "while pruning": []}
    phase = {"name": "alone", "stop": False}

    def writer() -> None:
        try:
            while not phase["stop"]:
                started = time.perf_counter()
                write_request_accept(kind=KIND_CONSUME, object_id=quota.pk, payload={"amount": 1})
                latencies[phase["name"]].append(time.perf_counter() - started)
                time.sleep(0.005)
        finally:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(seconds)
    phase["name"] = "while pruning"
    _log("pruning every final row older than 7 days while writes flow")
    started = time.monotonic()
    deleted = write_requests_prune(older_than=timedelta(days=7), batch_size=1000)
    prune_seconds = time.monotonic() - started
    phase["stop"] = True
    thread.join()

    def summary(values: list[float]) -> dict:
        values = sorted(values)
        return {
            "writes": len(values),
            "p50_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(values[int(0.99 * (len(values) - 1))] * 1000, 2),
            "max_ms": round(values[-1] * 1000, 2),
        }

    return {
        "deleted": deleted,
        "prune_seconds": round(prune_seconds, 1),
        "deleted_per_s": round(deleted / prune_seconds),
        "acceptance": {name: summary(values) for name, values in latencies.items()},
    }


if __name__ == "__main__":
    main()
