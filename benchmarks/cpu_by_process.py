"""Where the CPU goes per write while something else runs the load (e.g. `manage.py demo`).

    python manage.py demo --exit --web-port 8012 --flower-port 5562 &
    sleep 8; python benchmarks/cpu_by_process.py --seconds 40

Samples, once a second, the CPU seconds (user + system, from /proc) of every process on this
machine grouped by role (web, partition workers, Flower, producers, PostgreSQL, Redis)
and the number of final writes in the request log; prints CPU milliseconds per applied write
by role over the middle of the run, as JSON with --json. Linux only.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import time

import psycopg

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROLES = (
    ("granian", "web"),
    ("gunicorn", "web"),
    ("partition_worker", "partition workers"),
    ("run_flower", "flower"),
    ("spawn_main", "producers"),
    ("redis-server", "redis"),
)
# The load itself: reported apart, never counted in what a write costs.
LOAD_ROLE = "load generator (wrk)"


def role_of(command: str, owner: str) -> str | None:
    """The role a process plays, from its command line and owner; None if not ours."""
    if owner == "postgres":
        return "postgres"
    if command.startswith("wrk "):
        return LOAD_ROLE
    return next((role for marker, role in ROLES if marker in command), None)


def cpu_by_role() -> dict[str, float]:
    """CPU seconds used so far by every process of each role, with the children each has
    reaped (so a PostgreSQL backend or a pool process that exits between two samples still
    counts: its time moves to its parent's)."""
    totals: dict[str, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            owner = pwd.getpwuid(os.stat(f"/proc/{pid}").st_uid).pw_name
        except (OSError, KeyError):
            continue  # the process ended meanwhile
        role = role_of(command, owner)
        if role is not None:
            # utime, stime, cutime, cstime
            ticks = sum(int(value) for value in fields[11:15])
            totals[role] = totals.get(role, 0.0) + ticks / CLOCK_TICKS
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=40)
    parser.add_argument(
        "--dsn",
        default=os.environ.get("BENCH_DSN", "host=127.0.0.1 user=postgres dbname=racefree"),
        help="the database the load writes to",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    samples = []
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            final = conn.execute(
                "SELECT count(*) FROM writes_writerequest WHERE state <> 'pending'"
            ).fetchone()[0]
            samples.append((time.monotonic(), final, cpu_by_role()))
            time.sleep(1)
    # The middle of the run: skip the first and last fifth (start-up, tail).
    first, last = samples[len(samples) // 5], samples[-max(2, len(samples) // 5)]
    seconds, writes = last[0] - first[0], last[1] - first[1]
    if writes <= 0:
        raise SystemExit("no write was applied while sampling: is the load running?")
    per_write = {
        role: round((last[2][role] - first[2].get(role, 0.0)) / writes * 1000, 2)
        for role in sorted(last[2])
    }
    result = {
        "seconds": round(seconds, 1),
        "writes": writes,
        "writes_per_second": round(writes / seconds, 1),
        "cpu_ms_per_write": per_write,
        "cpu_ms_per_write_total": round(sum(per_write.values()), 2),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{writes} writes applied in {seconds:.0f} s ({writes / seconds:.0f}/s)")
    for role, ms in per_write.items():
        print(f"  {role:18} {ms:6.2f} ms CPU per write")
    print(f"  {'total':18} {result['cpu_ms_per_write_total']:6.2f} ms CPU per write")


if __name__ == "__main__":
    main()
