from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

TAG_NAME_MAX_LENGTH = 64


class Tag(models.Model):
    """A tag. `name` is stored normalized (see services.tag_name_normalize)."""

    name = models.CharField(max_length=TAG_NAME_MAX_LENGTH, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Guards writers that bypass normalization: "Cat" and "cat" stay one tag.
            models.UniqueConstraint(Lower("name"), name="tagging_tag_name_ci_unique"),
            models.CheckConstraint(condition=~models.Q(name=""), name="tagging_tag_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class Image(models.Model):
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="images",
    )
    tags = models.ManyToManyField(Tag, through="ImageTag", related_name="images", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("tag_image", "Can add and remove tags on any image")]

    def __str__(self) -> str:
        return f"{self.title} (#{self.pk})"


class ImageTag(models.Model):
    """The explicit through model (for metadata); unique (image, tag) is the final guard."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="tag_links")
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, related_name="image_links")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "tag"], name="tagging_imagetag_unique_pair"),
        ]

    def __str__(self) -> str:
        return f"{self.image_id}:{self.tag_id}"
