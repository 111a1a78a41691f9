#!/usr/bin/env bash
# Set up everything the project needs on this machine, idempotently:
#   a Python 3.11 virtualenv with the pinned dependencies, PostgreSQL / Redis / RabbitMQ
#   started if installed but down, the PostgreSQL database created (demo.sh migrates it).
# Sourced by demo.sh and test.sh; safe to run on its own.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mERROR: %s\033[0m\n' "$*" >&2; exit 1; }

# --- Python -------------------------------------------------------------------------------
PYTHON=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    PYTHON=$candidate; break
  fi
done
[ -n "$PYTHON" ] || die "Python 3.11 is required (Django 5.2 LTS; see README)."

if [ ! -x .venv/bin/python ]; then
  say "Creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  say "Installing pinned dependencies (pyproject.toml)"
  mkdir -p var
  # uv installs the same pins in ~18 s where pip takes 25-90 s on 2 cores (measured on a fresh
  # clone); pip remains the fallback when uv cannot be had or fails. --compile-bytecode, as
  # pip does: where PYTHONDONTWRITEBYTECODE is set (this machine) nothing writes .pyc later,
  # and every process would compile its imports again (the suite took twice as long).
  with_uv() { .venv/bin/python -m pip install uv==0.13.9 &&
              .venv/bin/uv pip install --compile-bytecode --python .venv/bin/python -e ".[dev]"; }
  with_pip() { .venv/bin/python -m pip install --upgrade pip &&
               .venv/bin/python -m pip install -e ".[dev]"; }
  if ! { with_uv || { echo "uv failed: pip instead"; with_pip; }; } > var/pip-install.log 2>&1; then
    tail -n 40 var/pip-install.log
    die "pip install failed (full log: var/pip-install.log)"
  fi
  rm -f .venv/.installed-* && touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"

# --- Services -------------------------------------------------------------------------------
port_open() { .venv/bin/python - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(1)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
}
wait_port() { for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done; return 1; }

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    say "Starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    wait_port 5432 || die "PostgreSQL did not start"
  else
    echo "PostgreSQL is not reachable on 127.0.0.1:5432 and not installed here."
  fi
fi
if ! port_open 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    say "Starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp >/dev/null
    wait_port 6379 || die "Redis did not start"
  else
    echo "Redis is not reachable on 127.0.0.1:6379 and not installed here."
  fi
fi
if [ "${NEED_RABBITMQ:-0}" = 1 ] && ! port_open 5672; then
  if command -v rabbitmq-server >/dev/null 2>&1; then
    say "Starting RabbitMQ"
    rabbitmq-server -detached >/dev/null 2>&1 || true
    wait_port 5672 || die "RabbitMQ did not start"
  fi
fi

# --- Load generator for the HTTP benchmark: Debian's wrk (only when asked for) -------------
if [ "${NEED_WRK:-0}" = 1 ] && ! command -v wrk >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "wrk is needed (HTTP benchmark): install it with your package manager"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo -n"
  say "Installing wrk (Debian package) for the HTTP benchmark"
  mkdir -p var
  if ! { $sudo_ apt-get install -y -q wrk || { $sudo_ apt-get update -q && $sudo_ apt-get install -y -q wrk; }; } \
      > var/apt-wrk.log 2>&1; then
    tail -n 20 var/apt-wrk.log
    die "could not install wrk (log: var/apt-wrk.log)"
  fi
fi

# --- A headless browser for the docs' screenshots: Debian's chromium (only when asked for) ----
if [ "${NEED_CHROMIUM:-0}" = 1 ] && ! command -v chromedriver >/dev/null 2>&1; then
  command -v apt-get >/dev/null 2>&1 || die "chromium is needed: install chromium and chromium-driver"
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_="sudo -n"
  say "Installing chromium and chromium-driver (Debian packages) for the screenshots"
  mkdir -p var
  if ! { $sudo_ apt-get install -y -q chromium chromium-driver ||
         { $sudo_ apt-get update -q && $sudo_ apt-get install -y -q chromium chromium-driver; }; } \
      > var/apt-chromium.log 2>&1; then
    tail -n 20 var/apt-chromium.log
    die "could not install chromium (log: var/apt-chromium.log)"
  fi
fi

# --- Database -------------------------------------------------------------------------------
if port_open 5432; then
  .venv/bin/python - <<'PY'
import os, psycopg
from urllib.parse import urlparse
url = urlparse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/racefree"))
name = url.path.lstrip("/")
with psycopg.connect(host=url.hostname, port=url.port or 5432, user=url.username or "postgres",
                     password=url.password, dbname="postgres", autocommit=True) as conn:
    if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
        conn.execute(f'CREATE DATABASE "{name}"')
        print(f"==> Created database {name}")
PY
fi
