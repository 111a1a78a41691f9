"""Create (or update) an API user and print its token: `manage.py create_api_user alice`."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandParser
from rest_framework.authtoken.models import Token

# What each role may do. "writer" creates images and quotas and writes to its own; "operator"
# may also read and write everybody's.
ROLES = {
    "reader": [],
    "writer": ["tagging.add_image", "quotas.add_quota"],
    "operator": [
        "tagging.add_image",
        "tagging.view_image",
        "tagging.tag_image",
        "quotas.add_quota",
        "quotas.view_quota",
        "quotas.consume_quota",
        "writes.view_writerequest",
    ],
}


class Command(BaseCommand):
    help = "Create an API user with a role's permissions and print its token."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", choices=sorted(ROLES), default="writer")

    def handle(self, *args: Any, **options: Any) -> None:
        user, _ = get_user_model().objects.get_or_create(username=options["username"])
        perms = []
        for name in ROLES[options["role"]]:
            app_label, codename = name.split(".")
            perms.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        user.user_permissions.set(perms)
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
