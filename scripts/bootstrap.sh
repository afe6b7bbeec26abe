#!/usr/bin/env bash
# Idempotent set-up on Debian 12 (root): apt packages, a venv in .venv, energyhost installed editable with [dev].
# Safe to run any number of times; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# mosquitto, influxd and postgres are started by the tests and the demo themselves, on free loopback ports;
# weasyprint (PDF reports) needs pango/harfbuzz/fontconfig; fonts-noto-cjk renders Chinese.
APT_PKGS=(mosquitto mosquitto-clients influxdb postgresql fonts-noto-cjk poppler-utils chromium python3-venv
          ca-certificates openssl libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 libfontconfig1 wrk)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing Debian packages: ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # Keep the packages' own services from starting on their default ports (1883, 8086, 5432): this
    # project runs its own instances. policy-rc.d answering 101 is Debian's way to say "do not start".
    restore_policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        restore_policy=yes
        trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ -z "$restore_policy" ] || $SUDO rm -f /usr/sbin/policy-rc.d
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
