"""Write settings from the environment: a bad value stops the process at start, with its name."""

from __future__ import annotations

import pytest

from tests.commands import run_manage_py


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("WRITE_DISPATCH", "mesage", "must be one of coalesced, message"),
        ("WRITE_ROUTING", "random", "must be one of partitioned, shared"),
        ("WRITE_PARTITIONS", "0", "must be greater than 0"),
        ("PARTITION_LEASE_TTL", "-1", "must be greater than 0"),
        ("DRAIN_BATCH_SIZE", "0", "must be greater than 0"),
        ("RECONCILE_AFTER", "-1", "must be greater than 0"),
        ("WRITE_PARTITIONS", "abc", "invalid literal for int()"),
    ],
)
def test_a_bad_write_setting_stops_the_process_with_its_name(name, value, reason):
    result = run_manage_py("check", **{name: value})
    assert result.returncode != 0
    assert f"{name}=" in result.stderr and reason in result.stderr, result.stderr[-2000:]


def test_the_default_write_settings_pass():
    result = run_manage_py("check")
    assert result.returncode == 0, result.stderr[-2000:]
