"""Tag write tasks (one message per write). Routed by the image's key; safe to run twice."""

from celery import shared_task

from writes.tasks import WRITE_TASK_OPTIONS, apply_through


@shared_task(name="tagging.add_tags", **WRITE_TASK_OPTIONS)
def add_tags(image_id: int, tags: list[str], request_id: str) -> dict:
    """Link `tags` to an image (applying the image's earlier pending writes first)."""
    return apply_through(add_tags.name, image_id, request_id)


@shared_task(name="tagging.remove_tags", **WRITE_TASK_OPTIONS)
def remove_tags(image_id: int, tags: list[str], request_id: str) -> dict:
    """Unlink `tags` from an image (applying the image's earlier pending writes first)."""
    return apply_through(remove_tags.name, image_id, request_id)
