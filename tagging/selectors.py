"""Reads of images and tags."""

from tagging.models import Image, ImageTag


def image_get(*, image_id: int) -> Image | None:
    """The image, or None."""
    return Image.objects.filter(pk=image_id).first()


def image_tag_names(*, image_id: int) -> list[str]:
    """The names of an image's tags, sorted."""
    return sorted(ImageTag.objects.filter(image_id=image_id).values_list("tag__name", flat=True))
