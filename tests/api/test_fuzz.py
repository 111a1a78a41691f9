"""Fuzz the API from its own OpenAPI schema (schemathesis, `--checks all`) against the live
stack: no 5xx; every status code, content type, header and body as the schema says; every
request the schema calls valid accepted, every one it calls invalid refused; no operation
answers without a token; undeclared methods get 405."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.factories import ImageFactory, QuotaFactory

pytestmark = pytest.mark.e2e

# Bounded in CI; raise FUZZ_EXAMPLES for a longer hunt.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "40"))
HOOKS = "tests.api.fuzz_hooks"  # what the schema states only in words (see the module)
ROOT = Path(__file__).resolve().parents[2]


def test_api_survives_schema_driven_fuzzing(api, live_stack, tmp_path):
    out = StringIO()
    call_command("create_api_user", "fuzzer", role="operator", stdout=out)
    # A few real objects (ids 1-20 are likely to exist) so some cases reach the services.
    for _ in range(5):
        ImageFactory()
        QuotaFactory(limit=1000)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{live_stack.base_url}/api/schema/?format=json",
            "--header",
            f"Authorization: Token {out.getvalue().strip()}",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "20261123",
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--suppress-health-check",
            "all",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(ROOT)},
    )
    print(result.stdout[-6000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
