"""The registry of write kinds: which object type each kind writes and how a group is applied.

Apps register their object types in `AppConfig.ready()`; the request log and the Celery router
look kinds up here, so neither knows tagging or quotas by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

OutcomeState = Literal["applied", "refused", "failed"]


@dataclass(frozen=True)
class PendingWrite:
    """One accepted write, as an applier sees it."""

    request_id: str
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class WriteOutcome:
    """What applying one write did: applied, or refused (or failed) with a reason in `result`."""

    state: OutcomeState
    result: dict[str, Any]


# apply(object_id=..., writes=[...]) -> one outcome per write, in order. It runs inside the
# caller's transaction and must apply the writes exactly as one-by-one application would.
GroupApplier = Callable[..., list[WriteOutcome]]


@dataclass(frozen=True)
class ObjectType:
    """A model whose rows receive partitioned writes (e.g. `quotas.quota`)."""

    label: str
    id_arg: str
    apply: GroupApplier
    kinds: frozenset[str] = field(default_factory=frozenset)

    def apply_group(
        self, object_id: int | str, writes: Sequence[PendingWrite]
    ) -> list[WriteOutcome]:
        """Apply writes to one object, in order, in the caller's transaction."""
        return self.apply(**{self.id_arg: object_id}, writes=writes)

    def key_for(self, object_id: int | str) -> str:
        """The object key that routes this object's writes, e.g. `quotas.quota:7`."""
        return f"{self.label}:{object_id}"


_by_label: dict[str, ObjectType] = {}
_by_kind: dict[str, ObjectType] = {}


def register_object_type(
    *, label: str, id_arg: str, apply: GroupApplier, kinds: Sequence[str]
) -> ObjectType:
    """Register an object type and the write kinds (= Celery task names) that target it."""
    object_type = ObjectType(label=label, id_arg=id_arg, apply=apply, kinds=frozenset(kinds))
    _by_label[label] = object_type
    for kind in kinds:
        _by_kind[kind] = object_type
    return object_type


def object_type_for_kind(kind: str) -> ObjectType:
    """The object type a write kind targets; KeyError for an unknown kind."""
    return _by_kind[kind]


def object_type_for_key(object_key: str) -> tuple[ObjectType, str]:
    """Split `label:id` into its registered object type and the id."""
    label, _, object_id = object_key.partition(":")
    return _by_label[label], object_id


def registered_kinds() -> frozenset[str]:
    """Every registered write kind."""
    return frozenset(_by_kind)
