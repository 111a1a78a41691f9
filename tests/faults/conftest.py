"""The fault-injection suite: one live stack (API, a worker and a standby per partition,
restarted like run_workers does), real bursts through the API, real faults."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.conf import settings

from tests.api.conftest import LiveStack, free_port
from workers.supervisor import (
    Supervisor,
    child_environment,
    partition_worker_specs,
    wait_for_http,
    wait_for_workers,
    web_spec,
)

RESULTS: list[dict] = []


@pytest.fixture(scope="module")
def fault_stack(django_db_setup, tmp_path_factory):
    import redis

    for url in (settings.CELERY_BROKER_URL, settings.REDIS_URL):
        redis.Redis.from_url(url).flushdb()
    port = free_port()
    supervisor = Supervisor(
        [
            web_spec(port, workers=2, threads=8),
            *partition_worker_specs(range(settings.WRITE_PARTITIONS), standbys=1),
        ],
        log_dir=tmp_path_factory.mktemp("faults"),
        env=child_environment(ALLOWED_HOSTS="127.0.0.1,localhost", WRITE_DISPATCH="coalesced"),
    )
    supervisor.start()
    stop_supervising = supervisor.supervise_in_background()
    stack = LiveStack(f"http://127.0.0.1:{port}", "", supervisor)
    try:
        wait_for_http(f"{stack.base_url}/healthz")
        wait_for_workers({f"writes.{p}" for p in range(settings.WRITE_PARTITIONS)})
        yield stack
    finally:
        stop_supervising.set()
        supervisor.stop()


def pytest_sessionfinish(session, exitstatus):
    if not RESULTS:
        return
    table = reliability_table(RESULTS)
    print("\n\nFault injection results\n" + table)
    out = Path(settings.BASE_DIR) / "var"
    out.mkdir(exist_ok=True)
    (out / "reliability.json").write_text(json.dumps(RESULTS, indent=2))
    if os.environ.get("WRITE_RELIABILITY_DOC") == "1":
        doc = Path(settings.BASE_DIR) / "docs" / "RELIABILITY.md"
        text = doc.read_text()
        start, end = "<!-- results -->", "<!-- /results -->"
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        doc.write_text(f"{before}{start}\n{table}\n{end}{after}")


def reliability_table(rows: list[dict]) -> str:
    lines = [
        "| scenario | requests | accepted | client retries | faults injected | fault lasted (s) | "
        "recovery (s) | longest wait (s) | lost | doubled | order violations | invariants |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['scenario']} | {r['sent']} | {r['accepted']} | {r['client_retries']} | "
            f"{r['faults']} | "
            f"{r['fault_s']:.1f} | {r['recovery_s']:.1f} | {r['longest_wait_s']:.1f} | "
            f"{r['lost']} | {r['doubled']} | "
            f"{r['order_violations']} | "
            f"{'all hold' if r['invariants_ok'] else 'BROKEN'} |"
        )
    return "\n".join(lines)
