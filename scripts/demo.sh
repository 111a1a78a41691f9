#!/usr/bin/env bash
# Set up, then run the demo: a burst of concurrent writes and a summary with the invariants.
# Extra args go to `manage.py demo` (see --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
say "migrate"
python manage.py migrate --no-input -v 0
say "demo"
exec python manage.py demo "$@"
