"""Secrets stay out of the repository, and placeholders cannot reach production."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError

ROOT = Path(settings.BASE_DIR)

SECRET_PATTERNS = [
    re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    re.compile(r"AKIA[0-9A-Z]{16}"),  # AWS access key id
    re.compile(r"gh[pousr]_[A-Za-z0-9]{36}"),  # GitHub token
    re.compile(r"xox[baprs]-[A-Za-z0-9-]{10,}"),  # Slack token
]


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / name for name in out.stdout.splitlines() if (ROOT / name).is_file()]


def test_no_secret_in_the_repository():
    offenders = []
    for path in tracked_files():
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        offenders += [f"{path.name}: {p.pattern}" for p in SECRET_PATTERNS if p.search(text)]
    assert offenders == []
    assert not (ROOT / ".env").exists() or ".env" in (ROOT / ".gitignore").read_text()


def _production_settings(secret_key: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "project.settings.production"
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "key",
    [
        None,
        "",
        "short",
        "change-me-to-50-or-more-random-characters-0123456789abcdefghijklmnop",
        "insecure-" + "x" * 60,
    ],
)
def test_production_refuses_missing_short_or_placeholder_keys(key):
    result = _production_settings(key)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_accepts_a_real_key():
    assert _production_settings("k" * 20 + "0123456789" * 5).returncode == 0


@pytest.mark.parametrize("auth", ["", "admin", "admin:", "admin:short", "admin:change-me-too"])
def test_flower_never_starts_without_real_credentials(settings, auth):
    settings.FLOWER_BASIC_AUTH = auth
    with pytest.raises(CommandError, match="FLOWER_BASIC_AUTH"):
        call_command("run_flower")
