"""factory_boy factories: data for tests is built here, never loaded from fixture files."""

import factory
from django.contrib.auth import get_user_model

from quotas.models import Quota
from tagging.models import Image, Tag


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.PostGenerationMethodCall("set_password", "pw")


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    title = factory.Sequence(lambda n: f"image {n}")


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    name = factory.Sequence(lambda n: f"tag-{n}")


class QuotaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Quota

    limit = 100
    remaining = factory.SelfAttribute("limit")
