#!/usr/bin/env bash
# Set up, then run the demo: a burst of concurrent writes and a summary with the invariants.
# Extra args go to `manage.py demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
if [ -z "${DATABASE_URL:-}" ] && ! port_open 5432; then
  # The quick start must run anywhere; say loudly that this is not the real thing.
  mkdir -p var
  export DATABASE_URL="sqlite:///$PWD/var/demo.sqlite3"
  printf '\033[33mWARNING: no PostgreSQL on 127.0.0.1:5432: the demo falls back to embedded SQLite (%s).\033[0m\n' "$DATABASE_URL"
fi
say "migrate"
python manage.py migrate --no-input -v 0
say "demo"
exec python manage.py demo "$@"
