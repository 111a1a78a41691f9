"""Accepting, applying and draining writes through the request log.

A write is applied only by locking its `pending` row (and every earlier pending row of the
same object, in `id` order) in the transaction that applies it and marks it final. So:

- a message delivered twice finds its row final and does nothing;
- a message overtaken by a later one (a retry, a redelivery after a crash) is applied by the
  later one first, in acceptance order, so per-object order holds whatever the broker does;
- a lost message is harmless: the row is still pending and the reconciler wakes a drain.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from core.bulk_sql import BIGINT, BOOLEAN, JSONB, TEXT, chunks, in_list, rows_cte
from core.errors import Conflict, Forbidden, InvalidInput
from core.group_commit import GroupCommit
from core.pg_connection import DedicatedConnection
from core.pg_prepared import prepared_cursor
from writes import counters, publishing
from writes.finish_notices import CHANNEL as FINISHED_CHANNEL
from writes.finish_notices import finish_notice
from writes.kinds import PendingWrite, WriteOutcome, object_type_for_key, object_type_for_kind
from writes.models import WriteRequest
from writes.partition_status import drain_stats
from writes.partitions import partition_for
from writes.selectors import write_request_wait
from writes.wakeups import CHANNEL as WAKEUP_CHANNEL
from writes.wakeups import wakeups

logger = logging.getLogger(__name__)

REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
REQUEST_ID_RULE = "1-100 characters: letters, digits and . _ : - (starting with a letter or digit)"
# Errors worth retrying: the connection dropped, PostgreSQL restarted, a deadlock or
# serialization failure was detected (psycopg maps those to OperationalError).
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)
_TABLE = WriteRequest._meta.db_table


class RequestIdConflict(Conflict):
    code = "request_id_conflict"


class WriteRefused(Forbidden):
    """A guarded write whose object does not exist, is not the caller's to write, or whose
    payload the object refuses (see WriteGuard). The API says which, precisely."""

    code = "refused"


@dataclass(frozen=True)
class WriteGuard:
    """Accept a write only if its object exists and `requested_by` may write it (owns it, by
    `owner_column`, or holds `perm`), and, with `payload_at_most=(field, column)`, the
    payload's field does not exceed the object's column (a consumption above the limit).

    Checked by the INSERT that accepts the write, so accepting costs no separate read of the
    object. The object's table must have an integer primary key `id`.
    """

    table: str
    perm: str
    owner_column: str = "owner_id"
    payload_at_most: tuple[str, str] | None = None


@dataclass
class Acceptance:
    """An accepted request. `task_id` is known once the transaction has committed."""

    request: WriteRequest
    created: bool
    ticket: publishing.PublishTicket | None = None

    @property
    def task_id(self) -> str | None:
        return self.ticket.task_id if self.ticket else None


def request_id_validate(request_id: object) -> str:
    """Return a valid client request id, or raise InvalidInput."""
    if not isinstance(request_id, str) or not REQUEST_ID_PATTERN.fullmatch(request_id):
        raise InvalidInput(f"request_id must be {REQUEST_ID_RULE}")
    return request_id


@dataclass(frozen=True)
class WriteSpec:
    """One write to accept: its kind, the object it writes, its payload, its idempotency key."""

    kind: str
    object_id: int | str
    payload: Mapping[str, Any]
    request_id: str | None = None


def write_request_accept(
    *,
    kind: str,
    object_id: int | str,
    payload: Mapping[str, Any],
    request_id: str | None = None,
    requested_by: AbstractBaseUser | None = None,
    guard: WriteGuard | None = None,
) -> Acceptance:
    """Record a write as pending and publish it when the surrounding transaction commits.

    The same `request_id` again returns the first request (created=False) and publishes
    nothing; reusing it for a different write raises RequestIdConflict; with a `guard`, a
    write it refuses raises WriteRefused. The payload must already be validated by the
    caller: appliers refuse, never crash, on a bad one.

    Outside a transaction (autocommit), concurrent calls in one process share one INSERT and
    one commit (group commit); each returns once its row is committed.
    """
    request = _new_request(WriteSpec(kind, object_id, payload, request_id), requested_by)
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        acceptance = _group_commit.submit(_Candidate(request, guard))
        return acceptance or _not_inserted(request, guard)
    [acceptance] = _accept([request], guard=guard)
    return acceptance


def write_requests_accept(
    *,
    writes: Sequence[WriteSpec],
    requested_by: AbstractBaseUser | None = None,
    guard: WriteGuard | None = None,
) -> list[Acceptance]:
    """Accept many writes with one INSERT, as write_request_accept accepts one: all or none
    (a RequestIdConflict or a WriteRefused accepts none), published after commit, in
    coalesced mode with one wake-up per partition."""
    return _accept([_new_request(spec, requested_by) for spec in writes], guard=guard)


def write_request_outcome(acceptance: Acceptance, *, wait: float) -> WriteRequest:
    """The accepted request, after waiting up to `wait` seconds for it to be final (applied,
    refused or failed; still pending if not in time). Waiting inside a transaction would
    wait for a write nobody can see yet: it is refused."""
    request = acceptance.request
    if wait <= 0 or request.is_final:
        return request
    if connection.in_atomic_block:
        raise RuntimeError(
            "waiting for a write's outcome inside a transaction: it is not committed"
        )

    return write_request_wait(request=request, timeout=wait) or request


@dataclass(frozen=True)
class _Candidate:
    """A write on its way into the log, with the guard its INSERT checks."""

    request: WriteRequest
    guard: WriteGuard | None


def _group_flush(candidates: Sequence[_Candidate]) -> list[Acceptance | None]:
    """One INSERT (autocommit: one commit) for the single writes of concurrent callers;
    None for each candidate not inserted (a repeated request_id, or refused by its guard),
    which its own caller then resolves."""
    first: dict[str, _Candidate] = {}
    for candidate in candidates:
        first.setdefault(candidate.request.request_id, candidate)
    unique = list(first.values())
    # Safe to run twice: a retry after a commit whose answer was lost finds every row taken
    # (ON CONFLICT) and its callers find their rows, as for a client's own retry.
    inserted = _flush_connection.run(lambda cursor: _insert_pending(unique, cursor), retry=True)
    created = [c.request for c in unique if c.request.request_id in inserted]
    for request in created:
        request.pk, request.accepted_at = inserted[request.request_id]
    tickets = dict(
        zip(
            [r.request_id for r in created],
            publishing.write_requests_publish_on_commit(created),
            strict=True,
        )
    )
    return [
        Acceptance(c.request, True, tickets[c.request.request_id])
        if first[c.request.request_id] is c and c.request.request_id in tickets
        else None
        for c in candidates
    ]


# The group's leader inserts on this process's own connection: no per-request health check.
_flush_connection = DedicatedConnection()
_group_commit: GroupCommit[_Candidate, Acceptance | None] = GroupCommit(_group_flush, max_batch=256)


def _not_inserted(request: WriteRequest, guard: WriteGuard | None) -> Acceptance:
    """Why a single write was not inserted: its request_id was already used (the same write:
    that request; another write: RequestIdConflict), or its guard refused it."""
    existing = WriteRequest.objects.filter(request_id=request.request_id).first()
    if existing is not None:
        if _differs(existing, request):
            raise RequestIdConflict(
                f"request_id {request.request_id!r} is already used for another write"
            )
        return Acceptance(existing, False)
    if guard is not None:
        raise WriteRefused(f"{request.object_key}: no such object, or not yours to write")
    raise RuntimeError(f"request {request.request_id} was neither inserted nor found")


def _accept(requests: list[WriteRequest], *, guard: WriteGuard | None) -> list[Acceptance]:
    """Accept `requests` in one transaction: all or none."""
    by_id: dict[str, WriteRequest] = {}
    for request in requests:
        twin = by_id.setdefault(request.request_id, request)
        if twin is not request and _differs(twin, request):
            raise RequestIdConflict(
                f"request_id {request.request_id!r} is used twice for different writes"
            )
    unique = list(by_id.values())
    with transaction.atomic() if len(unique) > 1 else nullcontext():
        inserted = _insert_pending([_Candidate(r, guard) for r in unique])
        existing = (
            {
                row.request_id: row
                for row in WriteRequest.objects.filter(
                    request_id__in=[r.request_id for r in unique if r.request_id not in inserted]
                )
            }
            if len(inserted) < len(unique)
            else {}
        )
        for request_id, row in existing.items():
            if _differs(row, by_id[request_id]):
                raise RequestIdConflict(
                    f"request_id {request_id!r} is already used for another write"
                )
        refused = [r for r in unique if r.request_id not in inserted.keys() | existing.keys()]
        if refused:
            raise WriteRefused(f"{refused[0].object_key}: no such object, or not yours to write")
        created = [r for r in unique if r.request_id in inserted]
        for request in created:
            request.pk, request.accepted_at = inserted[request.request_id]
        tickets = dict(
            zip(
                [r.request_id for r in created],
                publishing.write_requests_publish_on_commit(created),
                strict=True,
            )
        )
    acceptances = []
    for request in requests:
        first = by_id[request.request_id]
        if request is first and request.request_id in tickets:  # inserted by this call
            acceptances.append(Acceptance(request, True, tickets[request.request_id]))
        else:  # accepted before, or a repeat within this batch
            acceptances.append(Acceptance(existing.get(request.request_id, first), False))
    return acceptances


def _new_request(spec: WriteSpec, requested_by: AbstractBaseUser | None) -> WriteRequest:
    object_key = object_type_for_kind(spec.kind).key_for(spec.object_id)
    return WriteRequest(
        request_id=(
            request_id_validate(spec.request_id)
            if spec.request_id is not None
            else uuid.uuid4().hex
        ),
        kind=spec.kind,
        object_key=object_key,
        partition=partition_for(object_key),
        payload=dict(spec.payload),
        requested_by=requested_by,
    )


def _differs(a: WriteRequest, b: WriteRequest) -> bool:
    return (a.kind, a.object_key, a.payload) != (b.kind, b.object_key, b.payload)


def _insert_pending(
    candidates: Sequence[_Candidate], cursor: Any = None
) -> dict[str, tuple[int, Any]]:
    """INSERT the rows ON CONFLICT (request_id) DO NOTHING, each only if its guard allows it;
    return {request_id: (id, accepted_at)} of those inserted now. A concurrent twin waits on
    the unique index, then skips: one statement, race-free. On `cursor` if given (else on
    this thread's connection)."""
    if cursor is None:
        with connection.cursor() as own:
            return _insert_pending(candidates, own)
    inserted: dict[str, tuple[int, Any]] = {}
    accepted_at = WriteRequest._meta.get_field("accepted_at")
    guards = list(dict.fromkeys(c.guard for c in candidates if c.guard is not None))
    notify = publishing.notifies_on_accept()
    columns = [
        ("request_id", TEXT),
        ("kind", TEXT),
        ("object_key", TEXT),
        ("partition", BIGINT),
        ("payload", JSONB),
        ("requested_by_id", BIGINT),
        ("ord", BIGINT),
        ("guard", BIGINT),
        ("may_any", BOOLEAN),
        ("object_pk", BIGINT),
    ]
    for chunk in chunks(candidates):
        cte, params = rows_cte(
            "v",
            columns,
            [
                (
                    r.request_id,
                    r.kind,
                    r.object_key,
                    r.partition,
                    r.payload,
                    r.requested_by.pk if r.requested_by else None,
                    ord_,
                    *_guard_columns(c.guard, guards, r),
                )
                for ord_, c in enumerate(chunk)
                for r in [c.request]
            ],
        )
        if connection.vendor == "postgresql":
            # Ids are drawn in item order (they are the acceptance order), rows inserted
            # in request_id order: two batches sharing request_ids in different orders
            # then take the unique index's entries in one order, and cannot deadlock.
            insert = (
                f"INSERT INTO {_TABLE} (id, request_id, kind, object_key, partition, "
                "payload, state, result, requested_by_id, applied_by) "
                "SELECT n.id, n.request_id, n.kind, n.object_key, n.partition, n.payload, "
                "'pending', '{}', n.requested_by_id, '' FROM numbered AS n "
                f"WHERE {_guards_sql(guards, 'n')} ORDER BY n.request_id "
                "ON CONFLICT (request_id) DO NOTHING "
                "RETURNING request_id, id, accepted_at, partition"
            )
            # Coalesced: the same statement tells the partitions' owners (on commit).
            woke = (
                ", (SELECT pg_notify(%s, string_agg(DISTINCT i.partition::text, ',')) "
                "FROM ins AS i HAVING count(*) > 0) AS woke"
                if notify
                else ""
            )
            statement = (
                f"WITH {cte}, numbered AS MATERIALIZED (SELECT nextval("
                f"pg_get_serial_sequence('{_TABLE}', 'id')) AS id, o.* "
                "FROM (SELECT v.* FROM v ORDER BY v.ord) AS o), "
                f"ins AS ({insert}) "
                f"SELECT ins.request_id, ins.id, ins.accepted_at FROM ins{woke}"
            )
            if notify:
                params = [*params, WAKEUP_CHANNEL]
        else:  # SQLite serializes writers: no deadlock to avoid
            statement = (
                f"WITH {cte} INSERT INTO {_TABLE} (request_id, kind, object_key, "
                "partition, payload, state, result, requested_by_id, applied_by) "
                "SELECT v.request_id, v.kind, v.object_key, v.partition, v.payload, "
                "'pending', '{}', v.requested_by_id, '' FROM v "
                f"WHERE {_guards_sql(guards, 'v')} ORDER BY v.ord "
                "ON CONFLICT (request_id) DO NOTHING RETURNING request_id, id, accepted_at"
            )
        cursor.execute(statement, params)
        for request_id, row_id, at in cursor.fetchall():
            inserted[request_id] = (row_id, accepted_at.to_python(at))
    return inserted


def _guard_columns(
    guard: WriteGuard | None, guards: list[WriteGuard], request: WriteRequest
) -> tuple[int | None, bool, int | None]:
    """(guard index, may write any object, object pk) of one row."""
    if guard is None:
        return None, False, None
    user = request.requested_by
    may_any = bool(user is not None and user.has_perm(guard.perm))
    raw_id = request.object_key.partition(":")[2]
    # A non-integer id matches no row: the guard refuses it.
    object_pk = int(raw_id) if raw_id.isdigit() and len(raw_id) < 19 else -1
    return guards.index(guard), may_any, object_pk


def _guards_sql(guards: list[WriteGuard], row: str) -> str:
    """The WHERE condition (over the row source named `row`) that lets a row in: no guard,
    or its guard's object exists and may be written."""
    alternatives = [f"{row}.guard IS NULL"]
    for index, guard in enumerate(guards):
        owner = f'o."{guard.owner_column}"'
        conditions = [
            f"o.id = {row}.object_pk",
            f"({row}.may_any OR {owner} = {row}.requested_by_id)",
        ]
        if guard.payload_at_most:
            field, column = guard.payload_at_most
            if connection.vendor == "postgresql":
                amount = f"({row}.payload ->> '{field}')::numeric"
            else:
                amount = f"json_extract({row}.payload, '$.{field}')"
            conditions.append(f'{amount} <= o."{column}"')
        alternatives.append(
            f'({row}.guard = {index} AND EXISTS (SELECT 1 FROM "{guard.table}" AS o '
            f"WHERE {' AND '.join(conditions)}))"
        )
    return "(" + " OR ".join(alternatives) + ")"


def write_requests_apply_through(*, object_key: str, request_id: str) -> dict[str, Any]:
    """Apply, in order, the pending writes of `object_key`, at least up to `request_id`.

    The body of every one-message-per-write task. The first message of an object applies all
    of the object's pending writes (in acceptance order), so behind a backlog most messages
    find their write already final: one plain read answers those, without a transaction.
    Returns a summary for Flower.
    """
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, state FROM {_TABLE} WHERE request_id = %s", [request_id])
        row = cursor.fetchone()
    if row is None:
        logger.warning("message for unknown request %s ignored", request_id)
        return {"request_id": request_id, "state": "unknown", "applied_now": 0}
    row_id, state = row
    if state != WriteRequest.State.PENDING:
        return {"request_id": request_id, "state": state, "applied_now": 0}
    # All the object's pending writes, not just those up to this one: later messages of the
    # object then find their write final and cost one read each.
    batch = settings.DRAIN_BATCH_SIZE
    counts: Counter[str] = Counter()
    while True:
        applied = _group_apply(object_key, _Rows("object_key = %s", [object_key], limit=batch))
        counts += applied
        if applied.get("postponed") or sum(applied.values()) < batch:
            break
        if _state(row_id) != WriteRequest.State.PENDING:
            break
    return {"request_id": request_id, "applied_now": sum(counts.values()), **counts}


def _state(row_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT state FROM {_TABLE} WHERE id = %s", [row_id])
        return cursor.fetchone()[0]


@dataclass
class DrainReport:
    """What one drain of a partition did."""

    partition: int
    requests: int = 0
    groups: int = 0
    batches: int = 0
    applied: int = 0
    refused: int = 0
    failed: int = 0
    seconds: float = 0.0
    continued: bool = False
    postponed: int = 0  # writes left for later after a transient failure (see _group_apply)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def partition_drain(
    *,
    partition: int,
    batch_size: int | None = None,
    time_budget: float | None = None,
    linger: float | None = None,
) -> DrainReport:
    """Apply every pending write of a partition, oldest first, one transaction per object.

    In the partition's owner, the drain's state is `running` while it runs: writes accepted
    meanwhile wake nothing, this drain picks them up (writes/wakeups.py). Once a scan finds
    nothing it lingers up to `linger` seconds (DRAIN_LINGER) for more before it stops, so
    under load one drain serves a stream of writes. Stops after `time_budget` seconds and has
    a new drain published.
    """
    batch_size = batch_size or settings.DRAIN_BATCH_SIZE
    time_budget = settings.DRAIN_TIME_BUDGET if time_budget is None else time_budget
    if linger is None:  # only accepted writes' notifications end a linger early
        linger = settings.DRAIN_LINGER if settings.WRITE_DISPATCH == "coalesced" else 0.0
    report = DrainReport(partition=partition)
    started = time.monotonic()
    if not wakeups.may_drain(partition):
        return report  # this process no longer holds the partition: its new owner drains it
    # Objects waiting out a back-off after a transient failure: left alone by this drain
    # (with every later write of theirs: per-object order), the others go on.
    postponed: dict[str, Any] = {}
    with wakeups.draining(partition) as window:
        while True:
            window.begin_scan()
            skipped, skipped_params = in_list("object_key", list(postponed), TEXT)
            with prepared_cursor() as cursor:
                cursor.execute(
                    f"SELECT id, object_key, retry_at FROM {_TABLE} "
                    f"WHERE partition = %s AND state = 'pending' AND NOT ({skipped}) "
                    "ORDER BY id LIMIT %s",
                    [partition, *skipped_params, batch_size],
                )
                rows = cursor.fetchall()
            now = timezone.now()
            for _, object_key, retry_at in rows:
                if retry_at is not None and retry_at > now:
                    postponed[object_key] = retry_at
            rows = [row for row in rows if row[1] not in postponed]
            if not rows:
                if time.monotonic() - started < time_budget and window.linger(linger):
                    continue
                if window.try_finish():
                    break
                continue
            report.batches += 1
            groups: dict[str, list[int]] = {}
            for row_id, object_key, _ in rows:
                groups.setdefault(object_key, []).append(row_id)
            for object_key, ids in groups.items():
                counts = _group_apply(object_key, _Rows.through(object_key, max(ids)))
                report.groups += 1
                report.applied += counts.get("applied", 0)
                report.refused += counts.get("refused", 0)
                report.failed += counts.get("failed", 0)
                if counts.get("postponed"):
                    postponed[object_key] = now
                    report.postponed += counts["postponed"]
                # Checked per group, not per scan: a scan of many small groups can take long.
                if window.releasing():
                    break
                elapsed = time.monotonic() - started
                if elapsed > time_budget or (
                    elapsed > settings.DRAIN_SLICE and window.others_waiting()
                ):
                    report.continued = True  # out of time, or another partition's turn
                    break
            if window.releasing():
                break  # given up: its new owner drains the rest
            if report.continued:
                _drain_continue(partition)
                break
            if len(rows) < batch_size and window.busy() and not window.others_waiting():
                # Writes keep coming: let them gather, so that the next group (one
                # transaction, a fixed handful of statements) carries many of them.
                time.sleep(settings.DRAIN_GATHER)
    if postponed:
        _drain_after_back_off(partition)
    report.requests = report.applied + report.refused + report.failed
    report.seconds = round(time.monotonic() - started, 4)
    drain_stats.record(partition, requests=report.requests, seconds=report.seconds)
    return report


def _drain_after_back_off(partition: int) -> None:
    """Some objects wait out a back-off: publish a drain for when the first one is due."""
    due = (
        WriteRequest.objects.filter(partition=partition, state="pending", retry_at__isnull=False)
        .order_by("retry_at")
        .values_list("retry_at", flat=True)
        .first()
    )
    if due is not None:
        delay = max(0.0, (due - timezone.now()).total_seconds())
        publishing.partition_drain_publish_rollback_unsafe(partition, countdown=delay)


def _drain_continue(partition: int) -> None:
    """Out of time with work left: the owner publishes the next drain (here, if this process
    does not own the partition)."""
    if not wakeups.wake(partition, force=True):
        publishing.partition_drain_publish_rollback_unsafe(partition)


@dataclass(frozen=True)
class _Rows:
    """A selection of one object's request rows: an SQL condition and its parameters."""

    where: str
    params: list[Any]
    limit: int | None = None

    @classmethod
    def by_ids(cls, ids: list[int]) -> _Rows:
        where, params = in_list("id", ids)
        return cls(where, params)

    @classmethod
    def through(cls, object_key: str, last_id: int) -> _Rows:
        """An object's pending rows up to `last_id`, whatever their partition: after
        WRITE_PARTITIONS changed, an object's earlier writes may wait in its old partition,
        and they are applied first, in acceptance order."""
        return cls("object_key = %s AND id <= %s", [object_key, last_id])


def _group_apply(object_key: str, rows_filter: _Rows) -> Counter[str]:
    """Lock the matching pending rows of one object, apply them in order, mark them final."""
    try:
        object_type, object_id = object_type_for_key(object_key)
    except KeyError:
        # A type no longer deployed: fail its writes rather than stall the partition behind them.
        return _fail_all(object_key, rows_filter, f"no registered object type for {object_key!r}")
    try:
        with transaction.atomic():
            rows = _lock_pending(rows_filter)
            if not rows:
                return Counter()
            outcomes = object_type.apply_group(object_id, _pending_writes(rows))
            _finish(object_key, rows, outcomes)
            return Counter(outcome.state for outcome in outcomes)
    except TRANSIENT_DB_ERRORS as exc:
        if connection.vendor != "postgresql" or not _database_reachable():
            raise  # PostgreSQL itself is gone: not the writes' doing; the task is retried
        attempts = _count_attempt(rows_filter, exc)
        if max(attempts, default=0) < settings.DRAIN_MAX_ATTEMPTS:
            logger.warning("group %s: transient failure (%s); backing off", object_key, exc)
            return Counter(postponed=len(attempts))
        logger.error("group %s: last attempt failed; applying its writes one by one", object_key)
    except SoftTimeLimitExceeded:
        raise
    except Exception:
        logger.exception("group %s failed; applying its writes one by one", object_key)
    return _apply_one_by_one(object_key, rows_filter)


def _database_reachable() -> bool:
    """After a transient error: is the connection (and so PostgreSQL) still there?"""
    try:
        return connection.connection is not None and connection.is_usable()
    except Exception:
        return False


def _count_attempt(rows_filter: _Rows, exc: Exception) -> list[int]:
    """Record a transient failure on the selected pending rows, with a back-off before the
    next try; return their attempts so far."""
    error = f"{type(exc).__name__}: {exc}"[:500]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} SET attempts = attempts + 1, "
            "retry_at = now() + make_interval(secs => LEAST(%s, 2 ^ (attempts + 1))), "
            "result = jsonb_build_object('last_error', %s::text, 'attempts', attempts + 1) "
            f"WHERE {rows_filter.where} AND state = 'pending' RETURNING attempts",
            [settings.DRAIN_RETRY_MAX_DELAY, error, *rows_filter.params],
        )
        return [row[0] for row in cursor.fetchall()]


def _apply_one_by_one(object_key: str, rows_filter: _Rows) -> Counter[str]:
    """Isolate a failing write: apply each alone; one that still fails is marked failed."""
    object_type, object_id = object_type_for_key(object_key)
    counts: Counter[str] = Counter()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id FROM {_TABLE} WHERE {rows_filter.where} AND state = 'pending' ORDER BY id",
            rows_filter.params,
        )
        ids = [row[0] for row in cursor.fetchall()]
    for row_id in ids:
        try:
            with transaction.atomic():
                rows = _lock_pending(_Rows.by_ids([row_id]))
                if not rows:
                    continue
                outcomes = object_type.apply_group(object_id, _pending_writes(rows))
                _finish(object_key, rows, outcomes)
                counts.update(outcome.state for outcome in outcomes)
        except SoftTimeLimitExceeded:
            raise
        except TRANSIENT_DB_ERRORS:
            if not _database_reachable():
                raise
            # Alone, at its last attempt, it still fails: it is the poison; fail it.
            logger.exception("write %s failed at its last attempt", row_id)
            counts += _fail_all(object_key, _Rows.by_ids([row_id]), _last_error(row_id))
        except Exception as exc:
            logger.exception("write %s failed", row_id)
            detail = f"{type(exc).__name__}: {exc}"[:500]
            counts += _fail_all(object_key, _Rows.by_ids([row_id]), detail)
    return counts


def _last_error(row_id: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT attempts, result->>'last_error' FROM {_TABLE} WHERE id = %s", [row_id]
        )
        attempts, error = cursor.fetchone()
    return f"failed {attempts} times, transiently; last: {error}"


def _fail_all(object_key: str, rows_filter: _Rows, detail: str) -> Counter[str]:
    """Mark the selected rows that are still pending `failed`, with `detail`."""
    with transaction.atomic():
        rows = _lock_pending(rows_filter)
        failed = WriteOutcome("failed", {"reason": "error", "detail": detail})
        _finish(object_key, rows, [failed] * len(rows))
    return Counter(failed=len(rows))


def _lock_pending(rows_filter: _Rows) -> list[dict[str, Any]]:
    """Lock the selected rows that are still pending, in id order (every applier of an
    object takes them in the same order), and return them."""
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    payload = WriteRequest._meta.get_field("payload")
    with prepared_cursor() as cursor:
        cursor.execute(
            f"SELECT id, request_id, kind, payload, partition FROM {_TABLE} "
            f"WHERE {rows_filter.where} AND state = 'pending' ORDER BY id"
            f"{f' LIMIT {int(rows_filter.limit)}' if rows_filter.limit else ''}{lock}",
            rows_filter.params,
        )
        return [
            {
                "id": row_id,
                "request_id": request_id,
                "kind": kind,
                "payload": payload.from_db_value(value, None, connection),
                "partition": partition,
            }
            for row_id, request_id, kind, value, partition in cursor.fetchall()
        ]


def _pending_writes(rows: list[dict[str, Any]]) -> list[PendingWrite]:
    return [PendingWrite(row["request_id"], row["kind"], row["payload"]) for row in rows]


def _finish(object_key: str, rows: list[dict[str, Any]], outcomes: list[WriteOutcome]) -> None:
    """Mark one object's rows final with their outcomes, in one statement, stamped with one
    apply_seq. On PostgreSQL the statement also tells waiters (`?wait=`) on commit."""
    if len(rows) != len(outcomes):
        raise RuntimeError(f"applier returned {len(outcomes)} outcomes for {len(rows)} writes")
    now = timezone.now()
    if connection.vendor == "postgresql":
        # Evaluated once per statement (an InitPlan): one value for the whole group.
        seq_sql = "(SELECT nextval('writes_apply_seq'))"
    else:
        # The embedded SQLite fallback serializes writers, so max + 1 is safe there.
        seq_sql = f"(SELECT COALESCE(MAX(applied_seq), 0) + 1 FROM {_TABLE})"
    columns = [("id", BIGINT), ("state", TEXT), ("result", JSONB)]
    with prepared_cursor() as cursor:
        for chunk in chunks(list(zip(rows, outcomes, strict=True))):
            finished = [(row["id"], outcome.state, outcome.result) for row, outcome in chunk]
            cte, params = rows_cte("v", columns, finished)
            update = (
                f"UPDATE {_TABLE} SET state = v.state, result = v.result, "
                f"finished_at = %s, applied_seq = {seq_sql}, applied_by = %s "
                f"FROM v WHERE {_TABLE}.id = v.id"
            )
            params += [now, _process_name()]
            increments = counters.finish_increments(
                (row["kind"], outcome.state) for row, outcome in chunk
            )
            if connection.vendor == "postgresql":
                # One statement: the rows, their counters, and the notice to waiters.
                update = (
                    f"WITH {cte}, done AS ({update} RETURNING {_TABLE}.id), "
                    f"counted AS ({counters.upsert_sql()}) "
                    "SELECT pg_notify(%s, %s) WHERE EXISTS (SELECT FROM done)"
                )
                params += [
                    chunk[0][0]["partition"],
                    counters.increments_json(increments),
                    FINISHED_CHANNEL,
                    finish_notice(object_key, now, finished),
                ]
                cursor.execute(update, params)
            else:
                cursor.execute(f"WITH {cte} {update}", params)
                for name, amount in increments:
                    counters.counter_add(
                        partition=chunk[0][0]["partition"], name=name, amount=amount
                    )


def _process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def write_requests_retry(
    *, request_ids: Sequence[str] = (), failed_since: datetime | None = None
) -> list[str]:
    """Put failed writes back: pending again, attempts and error cleared, and moved to the
    end of their object's queue (a new id, drawn now: a failed write is applied after the
    writes of its object accepted before the retry, exactly as if sent again now), their
    partitions woken. Returns the request ids put back; others (unknown, not failed) are
    left alone."""
    conditions, params = ["state = 'failed'"], []
    if request_ids:
        where, values = in_list("request_id", list(request_ids), TEXT)
        conditions.append(where)
        params += values
    if failed_since is not None:
        conditions.append("finished_at >= %s")
        params.append(failed_since)
    if len(conditions) == 1:
        raise InvalidInput("name the writes to retry: request ids, or failed since when")
    new_id = (
        f"nextval(pg_get_serial_sequence('{_TABLE}', 'id'))"
        if connection.vendor == "postgresql"
        else f"(SELECT max(id) + 1 FROM {_TABLE})"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        # In id order, so that writes put back together keep their relative order.
        cursor.execute(
            f"SELECT id FROM {_TABLE} WHERE {' AND '.join(conditions)} ORDER BY id FOR UPDATE",
            params,
        )
        old_ids = [row[0] for row in cursor.fetchall()]
        retried: list[WriteRequest] = []
        for old_id in old_ids:
            cursor.execute(
                f"UPDATE {_TABLE} SET id = {new_id}, state = 'pending', result = '{{}}', "
                "finished_at = NULL, applied_seq = NULL, applied_by = '', attempts = 0, "
                "retry_at = NULL WHERE id = %s "
                "RETURNING id, request_id, kind, object_key, partition, payload",
                [old_id],
            )
            row_id, request_id, kind, object_key, partition, payload = cursor.fetchone()
            retried.append(
                WriteRequest(
                    pk=row_id,
                    request_id=request_id,
                    kind=kind,
                    object_key=object_key,
                    partition=partition,
                    payload=WriteRequest._meta.get_field("payload").from_db_value(
                        payload, None, connection
                    ),
                )
            )
        if retried and publishing.notifies_on_accept():
            woken = sorted({r.partition for r in retried})
            cursor.execute("SELECT pg_notify(%s, %s)", [WAKEUP_CHANNEL, ",".join(map(str, woken))])
        publishing.write_requests_publish_on_commit(retried)
    return [r.request_id for r in retried]


def write_requests_prune(
    *,
    older_than: timedelta,
    partition: int | None = None,
    batch_size: int = 1000,
    max_batches: int | None = None,
) -> int:
    """Delete final request rows accepted more than `older_than` ago, never a pending one:
    in batches of `batch_size`, each its own short transaction (no long lock), found through
    the (partition, accepted_at) index (no scan of the rest of the log). One partition, or
    all. Returns how many rows went.

    A consumption's idempotency outlives its request row: the ledger keeps its request_id
    (unique), so the same request_id sent again after pruning is accepted as a new request
    and then answered from the ledger's record (`duplicate: true`), never applied twice.
    Adding tags twice changes nothing by nature."""
    cutoff = timezone.now() - older_than
    partitions = range(settings.WRITE_PARTITIONS) if partition is None else [partition]
    deleted = 0
    for current in partitions:
        batches = 0
        while max_batches is None or batches < max_batches:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"DELETE FROM {_TABLE} WHERE id IN (SELECT id FROM {_TABLE} "
                    "WHERE partition = %s AND accepted_at < %s AND state <> 'pending' "
                    "ORDER BY accepted_at LIMIT %s)",
                    [current, cutoff, batch_size],
                )
                count = cursor.rowcount
            deleted += count
            batches += 1
            if count < batch_size:
                break
    return deleted


def write_requests_rehome(*, limit: int = 1000) -> int:
    """Pending rows of partitions that no longer exist (WRITE_PARTITIONS lowered) move to
    their object's partition now, and its owner is woken; returns how many moved. Their order
    is kept: rows of an object are applied in id order whatever their partition."""
    count = settings.WRITE_PARTITIONS
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, object_key FROM {_TABLE} WHERE state = 'pending' AND partition >= %s "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            [count, limit],
        )
        rows = cursor.fetchall()
        moved: dict[int, list[int]] = {}
        for row_id, object_key in rows:
            moved.setdefault(partition_for(object_key), []).append(row_id)
        for partition, ids in moved.items():
            where, params = in_list("id", ids)
            cursor.execute(
                f"UPDATE {_TABLE} SET partition = %s WHERE {where}", [partition, *params]
            )
        if moved and publishing.notifies_on_accept():
            cursor.execute(
                "SELECT pg_notify(%s, %s)", [WAKEUP_CHANNEL, ",".join(map(str, sorted(moved)))]
            )
    if moved and not publishing.notifies_on_accept():
        for partition in moved:
            publishing.partition_drain_publish_rollback_unsafe(partition)
    return len(rows)
