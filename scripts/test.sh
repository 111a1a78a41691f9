#!/usr/bin/env bash
# Set up, then run every check: ruff, Django's deploy checks, the whole pytest suite
# (real PostgreSQL, Redis, RabbitMQ and Celery worker processes). Extra args go to pytest.
#   ./scripts/test.sh            everything (what CI runs)
#   ./scripts/test.sh --quick    the fast lane: ruff and every test that needs no live stack
#                                and no process races (services, in-process API contract,
#                                routing, settings), in parallel
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then
  quick=1
  shift
fi
# Two pytest-xdist workers, each with its own test database and Redis databases
# (project/settings/test.py): most live tests wait on processes, so two overlap well.
# Measured on 2 cores (the main run): loadfile 234-264 s, worksteal 214 s, three workers 250 s.
parallel=(-n "${TEST_WORKERS:-2}" --dist worksteal)

if [ $quick -eq 1 ]; then
  source scripts/setup.sh
  started=$(date +%s)
  say "ruff"
  ruff check .
  ruff format --check .
  say "pytest, fast lane (no live stack, no process races)"
  python -m pytest "${parallel[@]}" -m "not e2e and not faults and not processes" "$@"
  say "fast lane passed in $(( $(date +%s) - started ))s"
  exit 0
fi

export NEED_RABBITMQ=1 NEED_WRK=1
source scripts/setup.sh

say "ruff"
ruff check .
ruff format --check .

say "pip-audit (known vulnerabilities in the pinned dependencies)"
mkdir -p var
set +e
pip-audit --progress-spinner off --skip-editable > var/pip-audit.txt 2>&1
audit=$?
set -e
unreachable="ConnectionError|Max retries exceeded|NameResolutionError|ServiceError|timed out"
if [ $audit -ne 0 ] && { grep -Eq "^Found [0-9]+ known vulnerabilit" var/pip-audit.txt ||
                         ! grep -Eq "$unreachable" var/pip-audit.txt; }; then
  cat var/pip-audit.txt
  die "pip-audit failed: vulnerable dependencies, or an error (see above)"
fi
skipped=$(grep -c "could not be audited" var/pip-audit.txt || true)
if [ $audit -ne 0 ]; then
  # Not a finding: the audit itself could not run (no vulnerability service reachable).
  tail -n 5 var/pip-audit.txt
  printf '\033[33mWARNING: pip-audit could not run (exit %s, see var/pip-audit.txt): the dependencies were NOT audited.\033[0m\n' "$audit"
elif [ "$skipped" -gt 0 ]; then
  printf '\033[33mWARNING: %s dependencies could not be audited: no vulnerability database is reachable from this machine (see var/pip-audit.txt).\033[0m\n' "$skipped"
else
  echo "no known vulnerabilities"
fi

say "manage.py check --deploy (production settings)"
SECRET_KEY="check-only-$(head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')" \
DJANGO_SETTINGS_MODULE=project.settings.production \
  python manage.py check --deploy --fail-level WARNING

started=$(date +%s)
if [ $# -gt 0 ]; then
  say "pytest $*"
  python -m pytest "$@"
else
  # Beside the main run (its test database is test_racefree, theirs test_racefree_gw0/1;
  # its Redis databases TEST_REDIS_SLOT=2): the partition tests again with RabbitMQ, and
  # hosts sharing the partitions (join, leave, a host killed) on RabbitMQ.
  say "pytest: the partition tests with the RabbitMQ broker, in the background"
  CELERY_BROKER_URL=amqp://guest:guest@127.0.0.1:5672// TEST_REDIS_SLOT=2 \
    python -m pytest -p no:cacheprovider tests/e2e/test_partitions.py tests/e2e/test_scale_out.py \
    -k "rabbitmq or (4000 and message) or twice or bypassed or join_and_leave or killed_mid_burst" \
    > var/pytest-rabbitmq.log 2>&1 &
  rabbitmq_run=$!
  trap 'kill "$rabbitmq_run" 2>/dev/null || true' EXIT
  say "pytest (Redis broker), in parallel: everything but the fault injection"
  python -m pytest "${parallel[@]}" -m "not faults" --durations=15
  say "pytest with RabbitMQ (var/pytest-rabbitmq.log)"
  if ! wait "$rabbitmq_run"; then
    cat var/pytest-rabbitmq.log
    die "the partition tests failed with the RabbitMQ broker (above)"
  fi
  trap - EXIT
  tail -n 1 var/pytest-rabbitmq.log
  # They restart Redis and PostgreSQL and terminate sessions: nothing may run beside them.
  say "pytest (Redis broker): fault injection, alone"
  python -m pytest -m faults --durations=5
  # Benchmarks are not timed tests: this only proves the benchmark runs end to end
  # (tiny sizes, Redis only, fewer processes). The real run: python benchmarks/run.py --docs
  say "benchmark smoke (python benchmarks/run.py --smoke --brokers redis --workers 1 --producers 2)"
  python benchmarks/run.py --smoke --brokers redis --workers 1 --producers 2 \
    --out var/benchmark-smoke
  say "HTTP benchmark smoke (WRITE_PARTITIONS=2 python benchmarks/run.py --http --smoke)"
  WRITE_PARTITIONS=2 python benchmarks/run.py --http --smoke --out var/benchmark-smoke
fi
say "all checks passed in $(( $(date +%s) - started ))s"
