"""Quota writes: atomic, never below zero, never applied twice, no deadlock through the queues.

A consumption is one conditional `UPDATE ... SET remaining = remaining - n WHERE id = ... AND
remaining >= n RETURNING remaining`: no row is locked before it, no SERIALIZABLE. The ledger
row is inserted first with `ON CONFLICT DO NOTHING` on the unique `request_id`, so a second
call with the same key finds the first one's row and changes nothing.

Locks: the slow path claims ledger keys (sorted) then updates the quota row; the fast path
(everything fits) updates the quota row and inserts the ledger rows in one statement. Only
the same request_id in two transactions at once could make them wait on each other; through
the request log that cannot happen (an object's pending request rows are locked first, in id
order, so its appliers run one after another). On direct, concurrent calls with one key,
PostgreSQL would cancel one of the two with a deadlock error (transient: the tasks retry it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, OperationalError, connection, models, transaction
from django.utils import timezone

from core.bulk_sql import BIGINT, TEXT, chunks, rows_cte
from core.errors import Conflict, InvalidInput, ObjectNotFound
from core.pg_prepared import prepared_cursor
from quotas.models import Quota, QuotaLedgerEntry
from writes.kinds import PendingWrite, WriteOutcome
from writes.models import WriteRequest
from writes.services import (
    RequestIdConflict,
    WriteGuard,
    request_id_validate,
    write_request_accept,
    write_request_outcome,
)

KIND_CONSUME = "quotas.consume"
KIND_REFILL = "quotas.refill"
# Far beyond any real quota, far below BIGINT overflow when summed over a batch.
MAX_AMOUNT = 10**12
MAX_LIMIT = 10**15
# Compare-and-set rounds before giving up (only reachable when writers bypass the partitions).
_CAS_ROUNDS = 1000


# Who may consume from or refill a quota (its owner, or whoever holds consume_quota); a
# consumption above the limit can never be granted. Checked by the accepting INSERT itself.
QUOTA_CONSUME_GUARD = WriteGuard(
    table=Quota._meta.db_table, perm="quotas.consume_quota", payload_at_most=("amount", "limit")
)
QUOTA_REFILL_GUARD = WriteGuard(table=Quota._meta.db_table, perm="quotas.consume_quota")


def quota_consume_enqueue(
    *,
    quota_id: int,
    amount: int = 1,
    request_id: str | None = None,
    requested_by: AbstractBaseUser | None = None,
    wait: float = 0.0,
) -> WriteRequest:
    """Consume from a quota through its partition's owner: the call a Django view makes.

    Returns the request once it is durable (committed; or, inside a transaction, part of it,
    its owner woken when it commits). With `wait` (outside a transaction) it waits up to that
    many seconds for the outcome: `state` "applied" (`result["remaining"]`) or "refused"
    (`result["reason"]`), or still "pending". The same `request_id` twice is one request.
    """
    acceptance = write_request_accept(
        kind=KIND_CONSUME,
        object_id=quota_id,
        payload={"amount": amount_validate(amount)},
        request_id=request_id,
        requested_by=requested_by,
    )
    return write_request_outcome(acceptance, wait=wait)


class QuotaNotFound(ObjectNotFound):
    code = "quota_not_found"


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


class AmountAboveLimit(Conflict):
    """A consumption larger than the quota's limit: it could never be granted (409)."""

    code = "amount_above_limit"


class QuotaItem(NamedTuple):
    """One write of a group being applied: its place in the group, the write, its amount."""

    index: int
    write: PendingWrite
    amount: int


@dataclass(frozen=True)
class QuotaOutcome:
    """What one consumption or refill did. `duplicate` when the request_id was seen before."""

    request_id: str
    granted: bool
    amount: int
    delta: int
    remaining: int
    reason: str = ""
    duplicate: bool = False


def amount_validate(amount: object) -> int:
    """Return a valid amount (an int in 1…MAX_AMOUNT) or raise InvalidAmount."""
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidAmount(f"amount must be an integer, got {amount!r}")
    if amount <= 0:
        raise InvalidAmount(f"amount must be positive, got {amount}")
    if amount > MAX_AMOUNT:
        raise InvalidAmount(f"amount must be at most {MAX_AMOUNT}, got {amount}")
    return amount


def quota_create(
    *,
    limit: int,
    guarded_object: models.Model | None = None,
    owner: AbstractBaseUser | None = None,
) -> Quota:
    """Create a full quota (`remaining == limit`), optionally guarding one object.

    One quota per object: a second one for the same object raises Conflict.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be an integer from 0 to {MAX_LIMIT}, got {limit!r}")
    fields: dict = {"limit": limit, "remaining": limit, "owner": owner}
    if guarded_object is not None:
        meta = guarded_object._meta
        # Not get_for_model(): its process-wide cache outlives a flushed contenttypes table.
        fields["content_type"] = ContentType.objects.get(
            app_label=meta.app_label, model=meta.model_name
        )
        fields["object_id"] = str(guarded_object.pk)
    try:
        with transaction.atomic():
            return Quota.objects.create(**fields)
    except IntegrityError as exc:
        raise Conflict("this object already has a quota") from exc


def quota_consume(*, quota_id: int, amount: int = 1, request_id: str) -> QuotaOutcome:
    """Consume `amount` from a quota, atomically, at most once per `request_id`.

    Not enough left is an outcome (`granted=False`, reason "insufficient"), not an error.
    Raises InvalidAmount, QuotaNotFound, or RequestIdConflict (key used for another write).
    """
    return _apply_one(quota_id, KIND_CONSUME, amount_validate(amount), request_id)


def quota_refill(*, quota_id: int, amount: int, request_id: str) -> QuotaOutcome:
    """Give back up to `amount` to a quota, never above its limit; once per `request_id`."""
    return _apply_one(quota_id, KIND_REFILL, amount_validate(amount), request_id)


def _apply_one(quota_id: int, kind: str, amount: int, request_id: str) -> QuotaOutcome:
    request_id = request_id_validate(request_id)
    write = PendingWrite(request_id=request_id, kind=kind, payload={"amount": amount})
    with transaction.atomic():
        [outcome] = quota_apply_writes(quota_id=quota_id, writes=[write])
    result = outcome.result
    if result.get("reason") == "quota_not_found":
        raise QuotaNotFound(result["detail"])
    if result.get("reason") == RequestIdConflict.code:
        raise RequestIdConflict(result["detail"])
    return QuotaOutcome(
        request_id=request_id,
        granted=outcome.state == "applied",
        amount=amount,
        delta=result["delta"],
        remaining=result["remaining"],
        reason=result.get("reason", ""),
        duplicate=result.get("duplicate", False),
    )


def quota_apply_writes(
    *, quota_id: int | str, writes: Sequence[PendingWrite]
) -> list[WriteOutcome]:
    """Apply consume/refill writes of one quota in order, in the caller's transaction.

    Each write's outcome is exactly what one-by-one application in this order would give:
    consumptions are granted while enough remains, refused after; refills never pass the
    limit. The quota row is written by one conditional UPDATE for the whole group.
    """
    try:
        quota_pk = int(quota_id)
    except (TypeError, ValueError):
        return [_not_found(quota_id)] * len(writes)

    outcomes: dict[int, WriteOutcome] = {}
    valid: list[QuotaItem] = []
    for index, write in enumerate(writes):
        try:
            if write.kind not in (KIND_CONSUME, KIND_REFILL):
                raise InvalidInput(f"unknown write kind {write.kind!r}")
            valid.append(QuotaItem(index, write, amount_validate(write.payload.get("amount"))))
        except InvalidInput as exc:
            outcomes[index] = WriteOutcome("refused", {"reason": exc.code, "detail": exc.message})

    ordered, repeats = _split_repeats(valid)
    fast = (
        _consume_all_granted(quota_pk, ordered)
        if ordered
        and all(write.kind == KIND_CONSUME for _, write, _ in ordered)
        # Data-modifying CTEs are PostgreSQL's; the SQLite demo fallback takes the slow path.
        and connection.vendor == "postgresql"
        else None
    )
    if fast is not None:
        entries, seen_before = fast
    else:
        claimed = _ledger_claim(quota_pk, ordered)
        fresh = [item for item in ordered if item.write.request_id in claimed]
        seen_before = [item for item in ordered if item.write.request_id not in claimed]
        entries = _quota_update(quota_pk, fresh) if fresh else []
        _ledger_record(entries)
    # A key the ledger already held answers from its record, every time it appears here:
    # its first appearance in this group may itself be a reuse for another write.
    recorded = {write.request_id for _, write, _ in seen_before}
    recorded_repeats = [item for item in repeats if item.write.request_id in recorded]
    repeats = [item for item in repeats if item.write.request_id not in recorded]
    if seen_before:
        outcomes.update(_recorded_outcomes(quota_pk, seen_before + recorded_repeats))
    outcomes.update((index, _outcome(entry)) for index, entry in entries)
    first_of = {write.request_id: (index, write.kind, a) for index, write, a in ordered}
    for index, write, amount in repeats:  # a new key twice in one group: the first one counts
        first, kind, first_amount = first_of[write.request_id]
        if (kind, first_amount) != (write.kind, amount):
            outcomes[index] = _reused(write.request_id)
        else:
            outcomes[index] = WriteOutcome(
                outcomes[first].state, {**outcomes[first].result, "duplicate": True}
            )
    return [outcomes[index] for index in range(len(writes))]


@dataclass(frozen=True)
class _Entry:
    request_id: str
    kind: str
    amount: int
    delta: int
    remaining_after: int
    outcome: str
    reason: str = ""


def _ledger_claim(quota_pk: int, ordered: list[QuotaItem]) -> set[str]:
    """Insert placeholder ledger rows; return the request_ids that are new (ours to apply).

    A concurrent transaction inserting the same request_id makes this wait until it commits,
    then skips the row: that is the at-most-once guarantee. Sorted, so no deadlock.
    """
    rows = sorted((write.request_id, write.kind.split(".")[1], a) for _, write, a in ordered)
    table = QuotaLedgerEntry._meta.db_table
    quota_table = Quota._meta.db_table
    now = timezone.now()
    claimed: set[str] = set()
    with connection.cursor() as cursor:
        for chunk in _chunks(rows):
            cte, params = rows_cte(
                "v", [("request_id", TEXT), ("kind", TEXT), ("amount", BIGINT)], chunk
            )
            cursor.execute(
                f"WITH {cte} "
                f"INSERT INTO {table} (quota_id, request_id, kind, amount, delta, outcome, reason, "
                "remaining_after, created_at) "
                "SELECT %s, v.request_id, v.kind, v.amount, 0, 'pending', '', 0, %s FROM v "
                f"WHERE EXISTS (SELECT 1 FROM {quota_table} WHERE id = %s) "
                "ORDER BY v.request_id ON CONFLICT DO NOTHING RETURNING request_id",
                params + [quota_pk, now, quota_pk],
            )
            claimed.update(row[0] for row in cursor.fetchall())
    return claimed


def _split_repeats(
    valid: list[QuotaItem],
) -> tuple[list[QuotaItem], list[QuotaItem]]:
    """First occurrences of each request_id, and the later repeats within the group."""
    seen: set[str] = set()
    first, repeats = [], []
    for item in valid:
        (repeats if item.write.request_id in seen else first).append(item)
        seen.add(item.write.request_id)
    return first, repeats


def _consume_all_granted(
    quota_pk: int, ordered: list[QuotaItem]
) -> tuple[list[tuple[int, _Entry]], list[QuotaItem]] | None:
    """The common case in one statement: enough remains for every consumption of the group.

    One conditional UPDATE takes the total and, in the same statement, the ledger rows are
    inserted (ON CONFLICT DO NOTHING on request_id). Returns None, having changed nothing,
    when not enough remains (or the quota does not exist). A request_id the ledger already
    held (a duplicate) is given back in the same transaction and returned as `seen_before`.
    """
    total = sum(amount for _, _, amount in ordered)
    after = total
    rows = []
    for _, write, amount in ordered:
        after -= amount  # what is still to be taken after this one
        rows.append((write.request_id, amount, after))
    rows.sort()  # unique-index lock order
    cte, params = rows_cte(
        "v", [("request_id", TEXT), ("amount", BIGINT), ("still_to_take", BIGINT)], rows
    )
    quota_table, ledger_table = Quota._meta.db_table, QuotaLedgerEntry._meta.db_table
    with prepared_cursor() as cursor:
        cursor.execute(
            f"WITH {cte}, "
            f"q AS (UPDATE {quota_table} SET remaining = remaining - %s "
            "WHERE id = %s AND remaining >= %s RETURNING remaining), "
            f"ins AS (INSERT INTO {ledger_table} (quota_id, request_id, kind, amount, delta, "
            "outcome, reason, remaining_after, created_at) "
            "SELECT %s, v.request_id, 'consume', v.amount, -v.amount, 'granted', '', "
            "q.remaining + v.still_to_take, %s FROM v CROSS JOIN q ORDER BY v.request_id "
            "ON CONFLICT DO NOTHING RETURNING request_id) "
            "SELECT (SELECT remaining FROM q), ARRAY(SELECT request_id FROM ins)",
            params + [total, quota_pk, total, quota_pk, timezone.now()],
        )
        final, inserted = cursor.fetchone()
        if final is None:
            return None
        inserted = set(inserted)
        seen_before = [item for item in ordered if item.write.request_id not in inserted]
        if not seen_before:
            return _all_granted(ordered, final), []
        # Rare: some were applied before. Give their amounts back and fix the new rows.
        cursor.execute(
            f"UPDATE {quota_table} SET remaining = remaining + %s WHERE id = %s "
            "RETURNING remaining",
            [sum(amount for _, _, amount in seen_before), quota_pk],
        )
        final = cursor.fetchone()[0]
    fresh = [item for item in ordered if item.write.request_id in inserted]
    entries = _all_granted(fresh, final)
    _ledger_record(entries)
    return entries, seen_before


def _quota_update(quota_pk: int, fresh: list[QuotaItem]) -> list[tuple[int, _Entry]]:
    """Apply claimed writes by simulation and compare-and-set; return their ledger entries."""
    table = Quota._meta.db_table
    with connection.cursor() as cursor:
        for _ in range(_CAS_ROUNDS):
            cursor.execute(
                f"SELECT remaining, {connection.ops.quote_name('limit')} "
                f"FROM {table} WHERE id = %s",
                [quota_pk],
            )
            remaining, limit = cursor.fetchone()
            entries, new_remaining = _simulate(fresh, remaining, limit)
            if new_remaining == remaining:
                return entries
            # Compare-and-set: applies only if nobody changed the row since it was read.
            cursor.execute(
                f"UPDATE {table} SET remaining = %s WHERE id = %s AND remaining = %s "
                "RETURNING remaining",
                [new_remaining, quota_pk, remaining],
            )
            if cursor.fetchone() is not None:
                return entries
    raise OperationalError(f"quota {quota_pk}: compare-and-set kept losing; retry")


def _all_granted(ordered: list[QuotaItem], final_remaining: int) -> list[tuple[int, _Entry]]:
    entries = []
    after = final_remaining + sum(amount for _, _, amount in ordered)
    for index, write, amount in ordered:
        after -= amount
        entries.append(
            (index, _Entry(write.request_id, "consume", amount, -amount, after, "granted"))
        )
    return entries


def _simulate(
    ordered: list[QuotaItem], remaining: int, limit: int
) -> tuple[list[tuple[int, _Entry]], int]:
    entries = []
    for index, write, amount in ordered:
        if write.kind == KIND_CONSUME:
            if remaining >= amount:
                remaining -= amount
                entry = _Entry(write.request_id, "consume", amount, -amount, remaining, "granted")
            else:
                entry = _Entry(
                    write.request_id, "consume", amount, 0, remaining, "refused", "insufficient"
                )
        else:
            credit = min(amount, limit - remaining)
            remaining += credit
            entry = _Entry(write.request_id, "refill", amount, credit, remaining, "refilled")
        entries.append((index, entry))
    return entries, remaining


def _ledger_record(applied: list[tuple[int, _Entry]]) -> None:
    """Write the final outcome into the placeholder ledger rows."""
    entries = [entry for _, entry in applied]
    table = QuotaLedgerEntry._meta.db_table
    columns = [
        ("request_id", TEXT),
        ("outcome", TEXT),
        ("delta", BIGINT),
        ("remaining_after", BIGINT),
        ("reason", TEXT),
    ]
    with connection.cursor() as cursor:
        for chunk in _chunks(entries):
            cte, params = rows_cte(
                "v",
                columns,
                [(e.request_id, e.outcome, e.delta, e.remaining_after, e.reason) for e in chunk],
            )
            cursor.execute(
                f"WITH {cte} UPDATE {table} SET outcome = v.outcome, delta = v.delta, "
                "remaining_after = v.remaining_after, reason = v.reason "
                f"FROM v WHERE {table}.request_id = v.request_id",
                params,
            )


def _recorded_outcomes(quota_pk: int, unclaimed: list[QuotaItem]) -> dict[int, WriteOutcome]:
    """Outcomes for request_ids the ledger already holds (or for a quota that does not exist)."""
    records = {
        entry.request_id: entry
        for entry in QuotaLedgerEntry.objects.filter(
            request_id__in=[write.request_id for _, write, _ in unclaimed]
        )
    }
    outcomes = {}
    for index, write, amount in unclaimed:
        entry = records.get(write.request_id)
        if entry is None:
            outcomes[index] = _not_found(quota_pk)
        elif (entry.quota_id, f"quotas.{entry.kind}", entry.amount) != (
            quota_pk,
            write.kind,
            amount,
        ):
            outcomes[index] = _reused(write.request_id)
        else:
            outcome = _outcome(
                _Entry(
                    entry.request_id,
                    entry.kind,
                    entry.amount,
                    entry.delta,
                    entry.remaining_after,
                    entry.outcome,
                    entry.reason,
                )
            )
            outcomes[index] = WriteOutcome(outcome.state, {**outcome.result, "duplicate": True})
    return outcomes


def _reused(request_id: str) -> WriteOutcome:
    return WriteOutcome(
        "refused",
        {
            "reason": RequestIdConflict.code,
            "detail": f"request_id {request_id!r} was already used for a different request",
        },
    )


def _outcome(entry: _Entry) -> WriteOutcome:
    result = {
        "kind": entry.kind,
        "amount": entry.amount,
        "delta": entry.delta,
        "remaining": entry.remaining_after,
    }
    if entry.outcome == "refused":
        return WriteOutcome(
            "refused",
            {**result, "reason": entry.reason, "detail": "not enough remaining"},
        )
    return WriteOutcome("applied", result)


def _chunks(items: list) -> list[list]:
    return list(chunks(items))


def _not_found(quota_id: object) -> WriteOutcome:
    return WriteOutcome(
        "refused", {"reason": "quota_not_found", "detail": f"quota {quota_id} does not exist"}
    )
