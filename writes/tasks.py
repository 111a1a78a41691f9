"""Celery tasks of the request log. Thin: parse ids, call a service."""

from celery import shared_task

from writes.kinds import object_type_for_kind
from writes.publishing import DRAIN_TASK
from writes.services import TRANSIENT_DB_ERRORS, partition_drain, write_requests_apply_through

# Shared by every write task: retry only what may succeed later (a lost connection, a
# restarted PostgreSQL, a deadlock). A refusal is an outcome, never an exception. Order
# survives a retry because every write task applies its object's earlier writes first.
WRITE_TASK_OPTIONS = {
    "autoretry_for": TRANSIENT_DB_ERRORS,
    "retry_backoff": 1,
    "retry_backoff_max": 30,
    "retry_jitter": True,
    "max_retries": 25,
    "acks_late": True,
}


@shared_task(name=DRAIN_TASK, **WRITE_TASK_OPTIONS)
def drain_partition(partition: int) -> dict:
    """Apply every pending write of one partition, oldest first (the coalesced path)."""
    return partition_drain(partition=partition).as_dict()


def apply_through(kind: str, object_id: int | str, request_id: str) -> dict:
    """The body of each one-message-per-write task: apply the object's writes up to this one."""
    object_key = object_type_for_kind(kind).key_for(object_id)
    return write_requests_apply_through(object_key=object_key, request_id=request_id)
