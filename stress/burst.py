"""A burst of concurrent writes from several producer processes, as users would send them.

Each producer records, for every request, when it started and when its acceptance returned,
so the audit can check per-object order against what the producers could observe.
`via="accept"` calls the acceptance service in-process; `via="http"` goes through the API.
"""

from __future__ import annotations

import multiprocessing
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from django.db import connections

from core.bulk_sql import chunks
from stress import producer_process
from stress.workload import Workload
from workers.supervisor import child_environment
from writes.kinds import object_type_for_kind
from writes.models import WriteRequest
from writes.services import write_request_accept


@dataclass
class Sent:
    """One request as its producer saw it."""

    request_id: str
    kind: str
    object_key: str
    producer: int
    started: float
    ended: float
    accepted: bool
    status: int = 0
    error: str = ""
    retries: int = 0  # times the client sent it again after a 503/429/no answer


@dataclass
class ApiTarget:
    """Where and as whom HTTP producers send their requests. A request refused with 503/429
    or unanswered is sent again (same request_id) for up to `retry_for` seconds."""

    base_url: str
    token: str
    wait: int = 0  # ?wait= seconds: an integer from 0 to 10
    retry_for: float = 30.0


def produce(
    *,
    workload: Workload,
    count: int,
    producer: int,
    scenario: str,
    seed: int,
    api: ApiTarget | None = None,
    progress: Any = None,
) -> list[Sent]:
    """Send `count` writes one after another; return what happened to each."""
    rng = random.Random(seed)
    session = _http_session(api) if api else None
    sent = []
    for _ in range(count):
        kind, object_id, payload = workload.next_request(rng, scenario=scenario)
        request_id = f"p{producer}-{uuid.uuid4().hex[:16]}"
        object_key = object_type_for_kind(kind).key_for(object_id)
        started = time.time()
        status, error, retries = 0, "", 0
        try:
            if session is not None:
                status, error, retries = _send_http(
                    session, api, kind, object_id, payload, request_id
                )
            else:
                # Autocommit: the INSERT commits on its own and the publish follows at once.
                write_request_accept(
                    kind=kind, object_id=object_id, payload=payload, request_id=request_id
                )
                status = 202
        except Exception as exc:  # recorded, not raised: the audit counts what failed
            error = f"{type(exc).__name__}: {exc}"[:300]
        sent.append(
            Sent(
                request_id,
                kind,
                object_key,
                producer,
                started,
                time.time(),
                status in (200, 202),
                status,
                error,
                retries,
            )
        )
        if progress is not None:
            with progress.get_lock():
                progress.value += 1
    connections.close_all()
    return sent


def _http_session(api: ApiTarget) -> Any:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {api.token}"
    return session


def _send_http(
    session: Any, api: ApiTarget, kind: str, object_id: int, payload: dict, request_id: str
) -> tuple[int, str, int]:
    if kind.startswith("tagging."):
        path = "tags" if kind.endswith("add_tags") else "tags/remove"
        url = f"{api.base_url}/api/images/{object_id}/{path}/"
        body = {"tags": payload["tags"], "request_id": request_id}
    else:
        path = "consume" if kind.endswith("consume") else "refill"
        url = f"{api.base_url}/api/quotas/{object_id}/{path}/"
        body = {"amount": payload["amount"], "request_id": request_id}
    params = {"wait": api.wait} if api.wait else None
    # As a careful client does: on 503 (a dependency is down), 429, or no answer at all, send
    # the same request again, with the same request_id, after Retry-After or a back-off. The
    # request_id makes the retry safe even if the first attempt was in fact accepted.
    delay, deadline, retries = 0.1, time.monotonic() + api.retry_for, -1
    while True:
        retries += 1
        try:
            response = session.post(url, json=body, params=params, timeout=30)
        except requests.RequestException as exc:
            status, error, retry_after = 0, f"{type(exc).__name__}: {exc}"[:300], None
        else:
            status, retry_after = response.status_code, response.headers.get("Retry-After")
            error = "" if status in (200, 202) else response.text[:300]
        if status not in (0, 429, 503) or time.monotonic() >= deadline:
            return status, error, retries
        time.sleep(float(retry_after) if retry_after else delay)
        delay = min(delay * 2, 2.0)


def run_burst(
    *,
    workload: Workload,
    requests: int,
    producers: int,
    scenario: str = "mixed",
    api: ApiTarget | None = None,
    seed: int = 1,
    on_progress: Callable[[int], None] | None = None,
) -> list[Sent]:
    """Send `requests` writes from `producers` processes at once; return every Sent.

    Producers are fresh interpreters (spawned, not forked), configured like this process:
    a forked child would inherit this process's broker and database sockets.
    """
    context = multiprocessing.get_context("spawn")
    progress = context.Value("i", 0)
    shares = [
        requests // producers + (1 if p < requests % producers else 0) for p in range(producers)
    ]
    jobs = [
        {
            "target": "stress.burst:produce",
            "workload": workload,
            "count": share,
            "producer": p,
            "scenario": scenario,
            "seed": seed * 1000 + p,
            "api": api,
        }
        for p, share in enumerate(shares)
    ]
    with context.Pool(
        producers, initializer=producer_process.init, initargs=(child_environment(), progress)
    ) as pool:
        pending = pool.map_async(producer_process.run, jobs)
        while not pending.ready():
            pending.wait(0.2)
            if on_progress:
                on_progress(progress.value)
        results = pending.get()
    if on_progress:
        on_progress(progress.value)
    return [Sent(**s) for per_producer in results for s in per_producer]


def wait_until_settled(
    request_ids: list[str],
    *,
    timeout: float = 120.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> int:
    """Wait until none of these requests is pending; return how many still are at timeout."""
    deadline = time.monotonic() + timeout
    total = len(request_ids)
    pending = total
    while time.monotonic() < deadline:
        pending = _pending_count(request_ids)
        if on_progress:
            on_progress(total - pending, total)
        if pending == 0:
            return 0
        time.sleep(0.2)
    return pending


def _pending_count(request_ids: list[str]) -> int:
    pending = 0
    for chunk in chunks(request_ids):
        pending += WriteRequest.objects.filter(
            request_id__in=chunk, state=WriteRequest.State.PENDING
        ).count()
    return pending
