"""The CPU sampler of benchmarks/: it finds the real services and attributes processes by role."""

from __future__ import annotations

from benchmarks.cpu_by_process import LOAD_ROLE, cpu_by_role, role_of


def test_roles_come_from_the_command_line_and_owner():
    assert role_of("python -m gunicorn project.wsgi --bind x", "root") == "web"
    assert role_of("granian --interface wsgi project.wsgi:application", "root") == "web"
    assert role_of("wrk -t2 -c16 http://127.0.0.1:8000/", "root") == LOAD_ROLE
    assert role_of("python manage.py partition_worker --partition 3", "root") == (
        "partition workers"
    )
    assert role_of("postgres: postgres racefree 127.0.0.1 idle", "postgres") == "postgres"
    assert role_of("vim notes.txt", "root") is None


def test_the_running_postgresql_and_redis_are_sampled():
    sampled = cpu_by_role()
    # Both servers run on this machine (the suite needs them) and have used some CPU.
    assert sampled.get("postgres", 0) > 0
    assert "redis" in sampled
