from django.contrib import admin

from tagging.models import Image, ImageTag, Tag


class ImageTagInline(admin.TabularInline):
    model = ImageTag
    extra = 0
    raw_id_fields = ["tag"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "owner", "created_at"]
    search_fields = ["title"]
    raw_id_fields = ["owner"]
    inlines = [ImageTagInline]


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "created_at"]
    search_fields = ["name"]
