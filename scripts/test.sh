#!/usr/bin/env bash
# The README's test command: install what is needed, lint, then run the whole suite
# (real mosquitto and influxd are started by the test fixtures on free loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
