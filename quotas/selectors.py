"""Reads of quotas and of the objects a quota may guard."""

from __future__ import annotations

import re

from django.apps import apps
from django.conf import settings
from django.db import models

from quotas.models import Quota

# A primary key in an "object" reference: a positive integer of at most 18 digits (a bigint).
_PK = "[1-9][0-9]{0,17}"


def guarded_object_pattern() -> str:
    """The pattern of a quota's `object`: "app_label.model:pk" with a model among
    QUOTA_GUARDED_MODELS, e.g. "tagging.image:42"."""
    labels = "|".join(re.escape(label) for label in settings.QUOTA_GUARDED_MODELS)
    return f"^({labels}):{_PK}$"


def quota_get(*, quota_id: int) -> Quota | None:
    """The quota, or None."""
    return Quota.objects.filter(pk=quota_id).first()


def guarded_object_get(*, reference: str) -> models.Model | None:
    """The object named by a reference matching guarded_object_pattern(), or None."""
    label, _, pk = reference.partition(":")
    return apps.get_model(label)._default_manager.filter(pk=int(pk)).first()
