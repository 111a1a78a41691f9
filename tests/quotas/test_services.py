import uuid

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, transaction
from django.db.models import F, Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import Conflict, InvalidInput
from quotas.models import Quota, QuotaLedgerEntry
from quotas.services import (
    MAX_AMOUNT,
    InvalidAmount,
    QuotaNotFound,
    quota_apply_writes,
    quota_consume,
    quota_create,
    quota_refill,
)
from tests.factories import ImageFactory, QuotaFactory
from writes.kinds import PendingWrite
from writes.services import RequestIdConflict

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("amount", [0, -1, MAX_AMOUNT + 1, 10**30, 1.5, "1", None, True])
def test_bad_amounts_are_refused_with_a_clear_error(amount):
    quota = QuotaFactory(limit=10)
    with pytest.raises(InvalidAmount, match="amount"):
        quota_consume(quota_id=quota.pk, amount=amount, request_id="r")
    with pytest.raises(InvalidAmount):
        quota_refill(quota_id=quota.pk, amount=amount, request_id="r")
    assert not QuotaLedgerEntry.objects.exists()


def test_unknown_quota_is_a_domain_error():
    with pytest.raises(QuotaNotFound, match="quota 424242 does not exist"):
        quota_consume(quota_id=424242, amount=1, request_id="r")


def test_request_id_reused_for_another_quota_is_refused():
    first, second = QuotaFactory(), QuotaFactory()
    quota_consume(quota_id=first.pk, amount=1, request_id="key")
    with pytest.raises(RequestIdConflict):
        quota_consume(quota_id=second.pk, amount=1, request_id="key")
    second.refresh_from_db()
    assert second.remaining == second.limit


def test_empty_request_id_is_refused():
    quota = QuotaFactory()
    with pytest.raises(InvalidInput):
        quota_consume(quota_id=quota.pk, amount=1, request_id="")


def test_huge_amount_is_refused_not_granted_partially():
    quota = QuotaFactory(limit=10)
    outcome = quota_consume(quota_id=quota.pk, amount=11, request_id="big")
    assert (outcome.granted, outcome.reason, outcome.remaining) == (False, "insufficient", 10)


def test_refill_never_passes_the_limit():
    quota = QuotaFactory(limit=10)
    quota_consume(quota_id=quota.pk, amount=3, request_id="c")
    outcome = quota_refill(quota_id=quota.pk, amount=100, request_id="f")
    assert (outcome.delta, outcome.remaining) == (3, 10)


def test_quota_create_validates_and_guards_one_object():
    image = ImageFactory()
    quota = quota_create(limit=5, guarded_object=image)
    assert quota.guarded_object == image
    assert quota.content_type == ContentType.objects.get_for_model(image)
    with pytest.raises(Conflict):
        quota_create(limit=5, guarded_object=image)
    for bad in (-1, "5", None, 1.0):
        with pytest.raises(InvalidInput):
            quota_create(limit=bad)


def test_check_constraint_is_the_final_guard():
    quota = QuotaFactory(limit=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        Quota.objects.filter(pk=quota.pk).update(remaining=F("remaining") - 2)
    with pytest.raises(IntegrityError), transaction.atomic():
        Quota.objects.filter(pk=quota.pk).update(remaining=F("limit") + 1)


def test_group_applied_at_once_equals_one_by_one():
    quota = QuotaFactory(limit=5)
    amounts = [2, 4, 1, 1, 3, 1]  # 4 is refused (3 left), then 1, 1 fit, 3 refused, 1 fits
    writes = [PendingWrite(f"w{i}", "quotas.consume", {"amount": a}) for i, a in enumerate(amounts)]
    with transaction.atomic():
        outcomes = quota_apply_writes(quota_id=quota.pk, writes=writes)
    assert [o.state for o in outcomes] == [
        "applied",
        "refused",
        "applied",
        "applied",
        "refused",
        "applied",
    ]
    assert [o.result["remaining"] for o in outcomes] == [3, 3, 2, 1, 1, 0]


ops = st.lists(
    st.tuples(
        st.sampled_from(["quotas.consume", "quotas.refill"]),
        st.integers(min_value=1, max_value=7),
        st.integers(min_value=0, max_value=12),  # small key space: many repeated request ids
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=ops, limit=st.integers(min_value=0, max_value=20), split=st.integers(1, 30))
def test_any_sequence_keeps_quota_in_bounds_and_ledger_consistent(ops, limit, split):
    """Property: consume/refill/retry in any order, applied one by one or in groups, keeps
    0 <= remaining <= limit, limit + sum(delta) == remaining, one ledger row per key, and the
    same outcomes as a plain Python model of the rules."""
    one_by_one = QuotaFactory(limit=limit)
    grouped = QuotaFactory(limit=limit)
    run = uuid.uuid4().hex  # examples share the test's transaction: keys must not collide
    writes = [PendingWrite(f"{run}-{k}", kind, {"amount": a}) for kind, a, k in ops]
    expected = _model(limit, writes)

    got_single = []
    for write in writes:
        with transaction.atomic():
            got_single += quota_apply_writes(quota_id=one_by_one.pk, writes=[write])
    got_grouped = []
    for start in range(0, len(writes), split):
        with transaction.atomic():
            got_grouped += quota_apply_writes(
                quota_id=grouped.pk, writes=_rekey(writes[start : start + split], "g")
            )

    for quota, got in ((one_by_one, got_single), (grouped, got_grouped)):
        quota.refresh_from_db()
        assert [(o.state, o.result.get("remaining")) for o in got] == expected
        assert 0 <= quota.remaining <= quota.limit
        ledger = QuotaLedgerEntry.objects.filter(quota=quota)
        assert quota.limit + (ledger.aggregate(s=Sum("delta"))["s"] or 0) == quota.remaining
        assert ledger.count() == len({w.request_id for w in writes})
        assert not ledger.filter(outcome="pending").exists()


def _rekey(writes, prefix):
    return [PendingWrite(prefix + w.request_id, w.kind, w.payload) for w in writes]


def _model(limit, writes):
    """The rules, applied one at a time in plain Python."""
    remaining, seen, out = limit, {}, []
    for write in writes:
        amount = write.payload["amount"]
        if write.request_id in seen:
            kind, first_amount, outcome = seen[write.request_id]
            same = (kind, first_amount) == (write.kind, amount)
            out.append(outcome if same else ("refused", None))  # a reused key changes nothing
            continue
        if write.kind == "quotas.consume":
            state = "applied" if remaining >= amount else "refused"
            remaining -= amount if state == "applied" else 0
        else:
            state, remaining = "applied", min(limit, remaining + amount)
        seen[write.request_id] = (write.kind, amount, (state, remaining))
        out.append((state, remaining))
    return out


def test_a_recorded_key_reused_then_repeated_in_one_group_answers_from_its_record():
    # Found by the property test: the group's first "k" is a reuse for another write, the
    # second is a true repeat of the recorded one and must get the recorded outcome.
    quota = QuotaFactory(limit=0)
    with transaction.atomic():
        [first] = quota_apply_writes(
            quota_id=quota.pk, writes=[PendingWrite("k", "quotas.consume", {"amount": 2})]
        )
    with transaction.atomic():
        reused, repeat = quota_apply_writes(
            quota_id=quota.pk,
            writes=[
                PendingWrite("k", "quotas.consume", {"amount": 1}),
                PendingWrite("k", "quotas.consume", {"amount": 2}),
            ],
        )
    assert (first.state, first.result["remaining"]) == ("refused", 0)
    assert reused.state == "refused" and reused.result["reason"] == "request_id_conflict"
    assert (repeat.state, repeat.result["remaining"]) == ("refused", 0)
    assert repeat.result["duplicate"]


def test_a_duplicate_inside_an_otherwise_granted_group_is_given_back():
    quota = QuotaFactory(limit=10)
    quota_consume(quota_id=quota.pk, amount=2, request_id="a")
    writes = [
        PendingWrite("b", "quotas.consume", {"amount": 1}),
        PendingWrite("a", "quotas.consume", {"amount": 2}),  # applied before: not again
        PendingWrite("c", "quotas.consume", {"amount": 1}),
    ]
    with transaction.atomic():
        b, a, c = quota_apply_writes(quota_id=quota.pk, writes=writes)
    quota.refresh_from_db()
    assert quota.remaining == 6
    assert a.result["duplicate"] and a.result["remaining"] == 8
    assert (b.result["remaining"], c.result["remaining"]) == (7, 6)
    ledger = dict(QuotaLedgerEntry.objects.values_list("request_id", "remaining_after"))
    assert ledger == {"a": 8, "b": 7, "c": 6}
