"""Tag writes: race-free under any concurrency, without row locks or SERIALIZABLE.

Every insert is a single `INSERT ... ON CONFLICT DO NOTHING` (the unique constraints decide),
followed by a read of what exists. Inserts go in a fixed order (tag names sorted, links by
tag id) so two writers of overlapping sets wait for each other instead of deadlocking.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from core.bulk_sql import BIGINT, chunks, rows_cte
from core.errors import InvalidInput, ObjectNotFound
from tagging.models import TAG_NAME_MAX_LENGTH, Image, ImageTag, Tag
from writes.kinds import PendingWrite, WriteOutcome
from writes.models import WriteRequest
from writes.services import WriteGuard, write_request_accept, write_request_outcome

KIND_ADD_TAGS = "tagging.add_tags"
KIND_REMOVE_TAGS = "tagging.remove_tags"
MAX_TAGS_PER_REQUEST = 50
TITLE_MAX_LENGTH = 200
# Control, surrogate, private-use and unassigned code points are refused in tag names; the zero
# width joiner is a format character that emoji sequences need, and tabs are just white space.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
_ALLOWED_FORMAT_CHARS = frozenset({"\u200d", "\t"})


# Who may tag an image: its owner, or whoever holds tag_image. Checked by the accepting INSERT.
IMAGE_TAGS_GUARD = WriteGuard(table=Image._meta.db_table, perm="tagging.tag_image")


def image_add_tags_enqueue(
    *,
    image_id: int,
    names: Iterable[str],
    request_id: str | None = None,
    requested_by: AbstractBaseUser | None = None,
    wait: float = 0.0,
) -> WriteRequest:
    """Add tags to an image through its partition's owner (see quota_consume_enqueue):
    durable on return; with `wait`, its outcome (`result["added"]`, `result["already"]`)."""
    acceptance = write_request_accept(
        kind=KIND_ADD_TAGS,
        object_id=image_id,
        payload={"tags": tag_names_normalize(list(names))},
        request_id=request_id,
        requested_by=requested_by,
    )
    return write_request_outcome(acceptance, wait=wait)


class ImageNotFound(ObjectNotFound):
    code = "image_not_found"


class InvalidTagName(InvalidInput):
    code = "invalid_tag_name"


class InvalidTagList(InvalidInput):
    code = "invalid_tag_list"


@dataclass(frozen=True)
class TagLinkResult:
    """Outcome of adding tags: which were linked now, which were linked before."""

    added: list[str]
    already: list[str]


@dataclass(frozen=True)
class TagUnlinkResult:
    """Outcome of removing tags: which links were removed, which did not exist."""

    removed: list[str]
    absent: list[str]


def _refused_char(ch: str) -> bool:
    return unicodedata.category(ch) in _REFUSED_CATEGORIES and ch not in _ALLOWED_FORMAT_CHARS


def tag_name_normalize(name: object) -> str:
    """Return the canonical form of a tag name ("  Cat " -> "cat"), or raise InvalidTagName.

    NFKC, trimmed, inner white space collapsed to one space, case-folded. Empty names,
    names over the length limit and names with control characters are refused.
    """
    if not isinstance(name, str):
        raise InvalidTagName(f"tag names must be strings, got {type(name).__name__}")
    text = unicodedata.normalize("NFKC", name)
    if any(_refused_char(ch) for ch in text):
        raise InvalidTagName(f"tag name {name!r} contains control or unassigned characters")
    text = " ".join(text.split()).casefold()
    if not text:
        raise InvalidTagName("tag names must not be empty")
    if len(text) > TAG_NAME_MAX_LENGTH:
        raise InvalidTagName(
            f"tag name {text[:20]!r}… is {len(text)} characters; at most {TAG_NAME_MAX_LENGTH}"
        )
    return text


def tag_names_normalize(names: object) -> list[str]:
    """Normalize a list of 1…MAX_TAGS_PER_REQUEST names; duplicates collapse, order kept."""
    if not isinstance(names, list | tuple):
        raise InvalidTagList("tags must be a list of names")
    if not names:
        raise InvalidTagList("tags must not be empty")
    if len(names) > MAX_TAGS_PER_REQUEST:
        raise InvalidTagList(f"at most {MAX_TAGS_PER_REQUEST} tags per request, got {len(names)}")
    return list(dict.fromkeys(tag_name_normalize(name) for name in names))


def image_create(*, title: str, owner: AbstractBaseUser | None = None) -> Image:
    """Create an image with no tags."""
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("title must be a non-empty string")
    if len(title) > TITLE_MAX_LENGTH:
        raise InvalidInput(f"title is longer than {TITLE_MAX_LENGTH} characters")
    return Image.objects.create(title=title.strip(), owner=owner)


def tags_ensure(*, names: Iterable[str]) -> dict[str, int]:
    """Return {name: tag id} for normalized names, creating the missing tags race-free."""
    wanted = sorted(set(names))
    found = dict(Tag.objects.filter(name__in=wanted).values_list("name", "id"))
    missing = [name for name in wanted if name not in found]
    if missing:
        # Sorted, so concurrent creators of overlapping name sets never deadlock.
        Tag.objects.bulk_create([Tag(name=name) for name in missing], ignore_conflicts=True)
        found.update(Tag.objects.filter(name__in=missing).values_list("name", "id"))
        still_missing = [name for name in missing if name not in found]
        if still_missing:
            # A row written around normalization ("Cat") holds the case-insensitive key.
            found.update(
                Tag.objects.annotate(key=Lower("name"))
                .filter(key__in=still_missing)
                .values_list("key", "id")
            )
    return found


def image_add_tags(*, image_id: int, tag_names: Sequence[str]) -> TagLinkResult:
    """Link tags (created if missing) to an image; never raises IntegrityError.

    Returns which tags this call linked and which were already linked. Unknown image:
    ImageNotFound. Bad names: InvalidTagName / InvalidTagList.
    """
    names = tag_names_normalize(tag_names)
    result = _apply_one(image_id, KIND_ADD_TAGS, names)
    return TagLinkResult(added=result["added"], already=result["already"])


def image_remove_tags(*, image_id: int, tag_names: Sequence[str]) -> TagUnlinkResult:
    """Unlink tags from an image. Returns which links were removed and which did not exist."""
    names = tag_names_normalize(tag_names)
    result = _apply_one(image_id, KIND_REMOVE_TAGS, names)
    return TagUnlinkResult(removed=result["removed"], absent=result["absent"])


def _apply_one(image_id: int, kind: str, names: list[str]) -> dict:
    write = PendingWrite(request_id=f"direct-{uuid.uuid4()}", kind=kind, payload={"tags": names})
    with transaction.atomic():
        [outcome] = image_apply_writes(image_id=image_id, writes=[write])
    if outcome.state == "refused":
        raise ImageNotFound(outcome.result["detail"])
    return outcome.result


def image_apply_writes(
    *, image_id: int | str, writes: Sequence[PendingWrite]
) -> list[WriteOutcome]:
    """Apply a group of add/remove-tag writes to one image, in order, in the caller's transaction.

    The outcome of each write is what it would have been applied alone, in this order. An
    adds-only group is one `INSERT ... ON CONFLICT DO NOTHING RETURNING` for all its links.
    """
    try:
        image_pk = int(image_id)
    except (TypeError, ValueError):
        return [_refused("image_not_found", f"image {image_id!r} does not exist")] * len(writes)
    if not Image.objects.filter(pk=image_pk).exists():
        return [_refused("image_not_found", f"image {image_pk} does not exist")] * len(writes)

    ops: list[tuple[str, list[str]] | WriteOutcome] = []
    for write in writes:
        try:
            if write.kind not in (KIND_ADD_TAGS, KIND_REMOVE_TAGS):
                raise InvalidInput(f"unknown write kind {write.kind!r}")
            ops.append((write.kind, tag_names_normalize(write.payload.get("tags"))))
        except InvalidInput as exc:
            ops.append(_refused(exc.code, exc.message))

    add_names = {n for op in ops if isinstance(op, tuple) and op[0] == KIND_ADD_TAGS for n in op[1]}
    remove_names = {
        n for op in ops if isinstance(op, tuple) and op[0] == KIND_REMOVE_TAGS for n in op[1]
    } - add_names
    tag_ids = tags_ensure(names=add_names) if add_names else {}
    if remove_names:
        tag_ids.update(Tag.objects.filter(name__in=remove_names).values_list("name", "id"))

    if not remove_names and all(not isinstance(op, tuple) or op[0] == KIND_ADD_TAGS for op in ops):
        return _apply_adds_only(image_pk, ops, tag_ids)
    return _apply_mixed(image_pk, ops, tag_ids)


def _apply_adds_only(
    image_pk: int, ops: list[tuple[str, list[str]] | WriteOutcome], tag_ids: dict[str, int]
) -> list[WriteOutcome]:
    newly_linked = _links_insert(image_pk, {tag_ids[name] for name in tag_ids})
    claimed: set[int] = set()
    outcomes = []
    for op in ops:
        if isinstance(op, WriteOutcome):
            outcomes.append(op)
            continue
        added, already = [], []
        for name in op[1]:
            tag_id = tag_ids[name]
            if tag_id in newly_linked and tag_id not in claimed:
                claimed.add(tag_id)
                added.append(name)
            else:
                already.append(name)
        outcomes.append(WriteOutcome("applied", {"added": added, "already": already}))
    return outcomes


def _apply_mixed(
    image_pk: int, ops: list[tuple[str, list[str]] | WriteOutcome], tag_ids: dict[str, int]
) -> list[WriteOutcome]:
    existing = set(
        ImageTag.objects.filter(image_id=image_pk, tag_id__in=tag_ids.values()).values_list(
            "tag_id", flat=True
        )
    )
    linked = set(existing)
    outcomes = []
    for op in ops:
        if isinstance(op, WriteOutcome):
            outcomes.append(op)
            continue
        kind, names = op
        done, not_done = [], []
        for name in names:
            tag_id = tag_ids.get(name)
            if kind == KIND_ADD_TAGS:
                (not_done if tag_id in linked else done).append(name)
                linked.add(tag_id)
            else:
                (done if tag_id in linked else not_done).append(name)
                linked.discard(tag_id)
        if kind == KIND_ADD_TAGS:
            outcomes.append(WriteOutcome("applied", {"added": done, "already": not_done}))
        else:
            outcomes.append(WriteOutcome("applied", {"removed": done, "absent": not_done}))
    linked.discard(None)
    _links_insert(image_pk, linked - existing)
    if existing - linked:
        ImageTag.objects.filter(image_id=image_pk, tag_id__in=sorted(existing - linked)).delete()
    return outcomes


def _links_insert(image_pk: int, tag_ids: set[int]) -> set[int]:
    """INSERT the (image, tag) links ON CONFLICT DO NOTHING; return the tag ids inserted now."""
    inserted: set[int] = set()
    ordered = sorted(tag_ids)
    now = timezone.now()
    table = ImageTag._meta.db_table
    with connection.cursor() as cursor:
        for chunk in chunks(ordered):
            cte, params = rows_cte("v", [("tag_id", BIGINT)], [(tag_id,) for tag_id in chunk])
            cursor.execute(
                f"WITH {cte} INSERT INTO {table} (image_id, tag_id, created_at) "
                "SELECT %s, v.tag_id, %s FROM v WHERE true ORDER BY v.tag_id "
                "ON CONFLICT DO NOTHING RETURNING tag_id",
                params + [image_pk, now],
            )
            inserted.update(row[0] for row in cursor.fetchall())
    return inserted


def _refused(reason: str, detail: str) -> WriteOutcome:
    return WriteOutcome("refused", {"reason": reason, "detail": detail})
