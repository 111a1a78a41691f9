"""Quota write tasks (one message per write). Routed by the quota's key; safe to run twice."""

from celery import shared_task

from writes.tasks import WRITE_TASK_OPTIONS, apply_through


@shared_task(name="quotas.consume", **WRITE_TASK_OPTIONS)
def consume(quota_id: int, amount: int, request_id: str) -> dict:
    """Consume `amount` from a quota (applying the quota's earlier pending writes first)."""
    return apply_through(consume.name, quota_id, request_id)


@shared_task(name="quotas.refill", **WRITE_TASK_OPTIONS)
def refill(quota_id: int, amount: int, request_id: str) -> dict:
    """Refill a quota by up to `amount` (applying the quota's earlier pending writes first)."""
    return apply_through(refill.name, quota_id, request_id)
