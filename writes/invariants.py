"""The invariants the product promises, checked against the database.

Each app registers its own (in `AppConfig.ready()`, as it registers its write kinds): the
request log knows neither quotas nor tags. `invariants_check()` runs every one, over the
whole database or, given a scope, over some objects of each type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

# check(object_ids) -> (passed, detail); object_ids None means every object of its type.
InvariantCheck = Callable[[Sequence[int] | None], tuple[bool, str]]


@dataclass(frozen=True)
class Invariant:
    name: str
    label: str  # the object type it is about, e.g. "quotas.quota"
    check: InvariantCheck


_invariants: list[Invariant] = []


def register_invariant(*, name: str, label: str, check: InvariantCheck) -> None:
    """Make `check` part of every invariants_check() that covers objects of `label`."""
    if any(existing.name == name for existing in _invariants):
        return  # registered again by a second ready() (tests): once is enough
    _invariants.append(Invariant(name, label, check))


@dataclass
class InvariantReport:
    """Named checks with their pass/fail and a short detail."""

    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(passed for passed, _ in self.checks.values())

    def add(self, name: str, passed: bool, detail: str) -> None:
        self.checks[name] = (passed, detail)

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {name: {"ok": ok, "detail": detail} for name, (ok, detail) in self.checks.items()}

    def passed(self) -> dict[str, bool]:
        return {name: ok for name, (ok, _) in self.checks.items()}


def invariants_check(scope: Mapping[str, Sequence[int]] | None = None) -> InvariantReport:
    """Check every registered invariant: over the whole database, or, with `scope`
    ({label: object ids}), only those about the scoped types, over those objects."""
    report = InvariantReport()
    for invariant in _invariants:
        if scope is not None and invariant.label not in scope:
            continue
        report.add(
            invariant.name, *invariant.check(None if scope is None else scope[invariant.label])
        )
    return report
