"""What must always hold of tags, whatever wrote them (registered in TaggingConfig.ready)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count

from tagging.models import ImageTag


def one_link_per_pair(ids: Sequence[int] | None) -> tuple[bool, str]:
    links = ImageTag.objects.all() if ids is None else ImageTag.objects.filter(image_id__in=ids)
    doubled = links.values("image_id", "tag_id").annotate(n=Count("id")).filter(n__gt=1).count()
    return doubled == 0, f"{doubled} doubled pairs"
