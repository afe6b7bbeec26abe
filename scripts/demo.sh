#!/usr/bin/env bash
# The README's main command: install what is needed, then run the whole stack on the simulated fleet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/energyhost demo "$@"
