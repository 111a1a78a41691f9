"""Images and their tags over HTTP. Views validate, check access and enqueue; nothing here
writes a tag link: the partition workers do."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api_errors import RETRY_AFTER, error_responses
from core.api_input import StrictCharField
from core.errors import GuardedObjectNotFound, InvalidInput
from core.permissions import HasModelPermission, owner_or_perm
from tagging.models import TAG_NAME_MAX_LENGTH, Image
from tagging.selectors import image_get, image_tag_names
from tagging.services import (
    IMAGE_TAGS_GUARD,
    KIND_ADD_TAGS,
    KIND_REMOVE_TAGS,
    MAX_TAGS_PER_REQUEST,
    TITLE_MAX_LENGTH,
    image_create,
    tag_names_normalize,
)
from writes.api import (
    READ_ERRORS,
    WRITE_PARAMETERS,
    WRITE_RESPONSES,
    RequestIdField,
    WriteView,
    request_id_valid,
)

# A title: at least one character that is not white space, no NUL (PostgreSQL cannot store it).
TITLE_PATTERN = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


# A tag name: no control character (C0, DEL, C1; a tab is white space), and at least one
# character that is not white space. What a pattern cannot say compactly is in the field's
# description and checked by tag_name_normalize: no format, private-use or unassigned
# character, and at most TAG_NAME_MAX_LENGTH characters after normalization too. (An exact
# pattern of every allowed character takes some 700 ranges: too large for schema tools.)
_NO_CONTROL = "\\u0000-\\u0008\\u000a-\\u001f\\u007f-\\u009f"
TAG_NAME_PATTERN = f"^[^{_NO_CONTROL}]*[^\\s{_NO_CONTROL}][^{_NO_CONTROL}]*$"


class ImageSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    title = StrictCharField(
        max_length=TITLE_MAX_LENGTH,
        pattern=TITLE_PATTERN,
        pattern_rule="must hold a character that is not white space, and no NUL",
        help_text="stored trimmed",
    )
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)


class TagNameField(StrictCharField):
    """A tag name as given: a string (1 is not "1") of at most TAG_NAME_MAX_LENGTH characters,
    matching TAG_NAME_PATTERN; then tag_name_normalize's own rules (TagsWriteSerializer)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(
            max_length=TAG_NAME_MAX_LENGTH,
            pattern=TAG_NAME_PATTERN,
            pattern_rule="must hold a character that is not white space, and no control, "
            "format, private-use or unassigned character",
            **kwargs,
        )


class TagsWriteSerializer(serializers.Serializer):
    tags = serializers.ListField(
        child=TagNameField(),
        min_length=1,
        max_length=MAX_TAGS_PER_REQUEST,
        help_text=f"1-{MAX_TAGS_PER_REQUEST} tag names of at most {TAG_NAME_MAX_LENGTH} "
        "characters; normalized (NFKC, trimmed, inner white space collapsed, case-folded: "
        f"'Cat ' = 'cat'). Beyond the pattern, also refused (400): format, private-use and "
        "unassigned characters (Unicode categories Cf except the zero width joiner, Co, Cn), "
        f"and a name over {TAG_NAME_MAX_LENGTH} characters once normalized",
    )
    request_id = RequestIdField()

    def validate_tags(self, tags: list[str]) -> list[str]:
        try:
            return tag_names_normalize(tags)
        except InvalidInput as exc:
            raise ValidationError(exc.message) from exc


def _image_data(image: Image) -> dict[str, Any]:
    return {"id": image.pk, "title": image.title, "tags": image_tag_names(image_id=image.pk)}


class ImageListView(APIView):
    permission_classes = [IsAuthenticated, HasModelPermission]
    required_perm = "tagging.add_image"

    @extend_schema(
        request=ImageSerializer,
        responses={201: ImageSerializer, **error_responses(400, 401, 403, 406, 413, 415, 503)},
        parameters=[RETRY_AFTER],
        operation_id="image_create",
    )
    def post(self, request: Request) -> Response:
        serializer = ImageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        image = image_create(title=serializer.validated_data["title"], owner=request.user)
        return Response(_image_data(image), status=201)


class ImageDetailView(APIView):
    @extend_schema(
        responses={200: ImageSerializer, **READ_ERRORS},
        parameters=[RETRY_AFTER],
        operation_id="image_get",
    )
    def get(self, request: Request, image_id: int) -> Response:
        image = image_get(image_id=image_id)
        if image is None:
            raise NotFound(f"no image {image_id}")
        if not owner_or_perm(request.user, image, "tagging.view_image"):
            raise PermissionDenied("you may not see this image")
        return Response(_image_data(image))


class _ImageTagsWriteView(WriteView):
    serializer_class = TagsWriteSerializer
    object_arg = "image_id"
    guard = IMAGE_TAGS_GUARD

    def payload(self, data: dict[str, Any]) -> dict[str, Any]:
        return {"tags": data["tags"]}

    def fast_validate(self, data: Any) -> tuple[dict[str, Any], str | None] | None:
        if type(data) is not dict or not data.keys() <= {"tags", "request_id"}:
            return None
        tags = data.get("tags")
        ok, request_id = request_id_valid(data)
        if not ok or type(tags) is not list or not 1 <= len(tags) <= MAX_TAGS_PER_REQUEST:
            return None
        if any(type(name) is not str or len(name) > TAG_NAME_MAX_LENGTH for name in tags):
            return None
        try:
            return {"tags": tag_names_normalize(tags)}, request_id
        except InvalidInput:
            return None  # the serializer words the error

    def explain_refusal(self, request: Request, object_id: int, payload: dict | None) -> None:
        image = image_get(image_id=object_id)
        if image is None:
            raise GuardedObjectNotFound(f"image {object_id} does not exist")
        if not owner_or_perm(request.user, image, "tagging.tag_image"):
            raise PermissionDenied("you may not tag this image")


@extend_schema_view(
    post=extend_schema(
        request=TagsWriteSerializer,
        responses=WRITE_RESPONSES,
        parameters=WRITE_PARAMETERS,
        operation_id="image_tags_add",
    )
)
class ImageTagsAddView(_ImageTagsWriteView):
    """Link tags to an image (created if missing). Applied by the image's partition worker."""

    kind = KIND_ADD_TAGS


@extend_schema_view(
    post=extend_schema(
        request=TagsWriteSerializer,
        responses=WRITE_RESPONSES,
        parameters=WRITE_PARAMETERS,
        operation_id="image_tags_remove",
    )
)
class ImageTagsRemoveView(_ImageTagsWriteView):
    """Unlink tags from an image. Applied by the image's partition worker."""

    kind = KIND_REMOVE_TAGS
