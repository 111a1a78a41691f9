"""Workloads: which objects a burst writes to, and how hot the hottest ones are."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from quotas.services import KIND_CONSUME, KIND_REFILL, quota_create
from tagging.services import KIND_ADD_TAGS, KIND_REMOVE_TAGS, image_create

TAG_VOCABULARY = [f"t{i:02d}" for i in range(24)]


@dataclass
class Workload:
    """Objects to write to. `hot` is the share of traffic sent to the hottest tenth of the
    objects (Zipf-like inside it: the first gets the most); the rest is spread evenly."""

    image_ids: list[int] = field(default_factory=list)
    quota_ids: list[int] = field(default_factory=list)
    hot: float = 0.5
    remove_share: float = 0.1
    refill_share: float = 0.05

    def pick(self, rng: random.Random, ids: list[int]) -> int:
        hot_count = max(1, len(ids) // 10)
        if rng.random() < self.hot:
            weights = [1.0 / (rank + 1) for rank in range(hot_count)]
            return rng.choices(ids[:hot_count], weights=weights)[0]
        return rng.choice(ids)

    def next_request(self, rng: random.Random, *, scenario: str) -> tuple[str, int, dict]:
        """(kind, object_id, payload) of the next write; scenario "tags", "quota" or "mixed"."""
        if scenario == "mixed":
            scenario = rng.choice(["tags", "quota"])
        if scenario == "tags":
            image_id = self.pick(rng, self.image_ids)
            tags = rng.sample(TAG_VOCABULARY, rng.randint(1, 3))
            kind = KIND_REMOVE_TAGS if rng.random() < self.remove_share else KIND_ADD_TAGS
            return kind, image_id, {"tags": tags}
        quota_id = self.pick(rng, self.quota_ids)
        if rng.random() < self.refill_share:
            return KIND_REFILL, quota_id, {"amount": rng.randint(1, 3)}
        return KIND_CONSUME, quota_id, {"amount": 1}


def workload_create(
    *, images: int, quotas: int, quota_limit: int, hot: float = 0.5, owner: object = None
) -> Workload:
    """Create fresh images and full quotas to write to."""
    image_ids = [image_create(title=f"burst image {i}", owner=owner).pk for i in range(images)]
    quota_ids = [quota_create(limit=quota_limit, owner=owner).pk for _ in range(quotas)]
    return Workload(image_ids=image_ids, quota_ids=quota_ids, hot=hot)
