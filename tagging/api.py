"""Images and their tags over HTTP. Views validate, check access and enqueue; nothing here
writes a tag link: the partition workers do."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import InvalidInput
from core.permissions import HasModelPermission, owner_or_perm
from tagging.models import TAG_NAME_MAX_LENGTH, Image
from tagging.selectors import image_tag_names
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
    ERRORS,
    WAIT_PARAMETER,
    WRITE_RESPONSES,
    RequestIdField,
    WriteView,
    request_id_valid,
)


class ImageSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(max_length=TITLE_MAX_LENGTH)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)


class TagNameField(serializers.CharField):
    """A tag name as given: a string (DRF's CharField would turn 1 into "1")."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TagsWriteSerializer(serializers.Serializer):
    tags = serializers.ListField(
        child=TagNameField(
            max_length=TAG_NAME_MAX_LENGTH * 4, allow_blank=True, trim_whitespace=False
        ),
        allow_empty=False,
        max_length=MAX_TAGS_PER_REQUEST,
        help_text=f"1-{MAX_TAGS_PER_REQUEST} tag names; trimmed and case-folded ('Cat ' = 'cat')",
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
        responses={201: ImageSerializer, **ERRORS},
        operation_id="image_create",
    )
    def post(self, request: Request) -> Response:
        serializer = ImageSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        image = image_create(title=serializer.validated_data["title"], owner=request.user)
        return Response(_image_data(image), status=201)


class ImageDetailView(APIView):
    @extend_schema(responses={200: ImageSerializer, **ERRORS}, operation_id="image_get")
    def get(self, request: Request, image_id: int) -> Response:
        image = get_object_or_404(Image, pk=image_id)
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
        if any(type(name) is not str or len(name) > TAG_NAME_MAX_LENGTH * 4 for name in tags):
            return None
        try:
            return {"tags": tag_names_normalize(tags)}, request_id
        except InvalidInput:
            return None  # the serializer words the error

    def explain_refusal(self, request: Request, object_id: int, payload: dict | None) -> None:
        image = get_object_or_404(Image, pk=object_id)
        if not owner_or_perm(request.user, image, "tagging.tag_image"):
            raise PermissionDenied("you may not tag this image")


@extend_schema_view(
    post=extend_schema(
        request=TagsWriteSerializer,
        responses=WRITE_RESPONSES,
        parameters=[WAIT_PARAMETER],
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
        parameters=[WAIT_PARAMETER],
        operation_id="image_tags_remove",
    )
)
class ImageTagsRemoveView(_ImageTagsWriteView):
    """Unlink tags from an image. Applied by the image's partition worker."""

    kind = KIND_REMOVE_TAGS
