"""Celery tasks of the baseline strategies `manage.py stress` and the benchmarks compare.

They run on their own queue ("stress"), consumed by ordinary concurrent workers: that is the
shape the seeds' answers have in production. Never used by the product's write path.
"""

from celery import shared_task

from stress import strategies


@shared_task(name="stress.noop")
def noop(n: int = 0) -> int:
    """Nothing: the broker's and Celery's own cost per message."""
    return n


@shared_task(name="stress.lock_consume")
def lock_consume(quota_id: int, request_id: str, run_id: str, accepted_at: float) -> str:
    """Decrement under select_for_update (the seed's answer)."""
    return strategies.lock_consume(
        quota_id=quota_id, request_id=request_id, run_id=run_id, accepted_at=accepted_at
    ).outcome


@shared_task(name="stress.lock_add_tag")
def lock_add_tag(
    image_id: int, tag_name: str, request_id: str, run_id: str, accepted_at: float
) -> str:
    """Check-then-insert a tag link under select_for_update on the image."""
    return strategies.lock_add_tag(
        image_id=image_id,
        tag_name=tag_name,
        request_id=request_id,
        run_id=run_id,
        accepted_at=accepted_at,
    ).outcome


@shared_task(name="stress.serializable_consume")
def serializable_consume(quota_id: int, request_id: str, run_id: str, accepted_at: float) -> str:
    """Read-modify-write under SERIALIZABLE, retried on 40001 (the seed's question)."""
    return strategies.serializable_consume(
        quota_id=quota_id, request_id=request_id, run_id=run_id, accepted_at=accepted_at
    ).outcome


@shared_task(name="stress.serializable_add_tag")
def serializable_add_tag(
    image_id: int, tag_name: str, request_id: str, run_id: str, accepted_at: float
) -> str:
    """Check-then-insert a tag link under SERIALIZABLE, retried on 40001."""
    return strategies.serializable_add_tag(
        image_id=image_id,
        tag_name=tag_name,
        request_id=request_id,
        run_id=run_id,
        accepted_at=accepted_at,
    ).outcome
