#!/usr/bin/env bash
# Idempotent set-up on Debian 12 (root): apt packages, a venv in .venv, energyhost installed editable with [dev].
# Safe to run any number of times; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(mosquitto mosquitto-clients influxdb fonts-noto-cjk poppler-utils chromium python3-venv ca-certificates)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv with $($PY --version)"
    $PY -m venv .venv
fi
stamp=.venv/.energyhost-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "bootstrap: pip install -e .[dev]"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
