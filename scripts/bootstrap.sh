#!/usr/bin/env bash
# Idempotent set-up on Debian 12 (root): apt packages, a venv in .venv, energyhost installed editable with [dev].
# Safe to run any number of times; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# mosquitto, influxd and postgres are started by the tests and the demo themselves, on free loopback ports;
# weasyprint (PDF reports) needs pango/harfbuzz/fontconfig; fonts-noto-cjk renders Chinese.
# util-linux: setpriv gives the demo's daemons a parent-death signal (energyhost/demo.py).
APT_PKGS=(mosquitto mosquitto-clients influxdb postgresql fonts-noto-cjk poppler-utils chromium python3-venv
          ca-certificates openssl libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 libfontconfig1 util-linux
          wrk)    # wrk: bench/bench_api.py's load generator
command -v npm >/dev/null || APT_PKGS+=(npm)     # only to fetch the pinned browser assets below
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

# Browser assets of the web pages and /docs, served by the app itself (no CDN): pinned npm packages,
# each tarball checked against its sha512 integrity (`npm view NAME@VER dist.integrity`) before it is
# unpacked into api/static/vendor/ (git-ignored) with the package's LICENSE beside the files.
vendor_npm() {   # name version integrity file...
    local name=$1 ver=$2 sri=$3 dest=api/static/vendor
    shift 3
    [ -f "$dest/.$name-$ver" ] && return 0
    echo "bootstrap: fetching $name@$ver into $dest"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent "$name@$ver" >/dev/null)
    local got
    got="sha512-$(openssl dgst -sha512 -binary "$tmp/$name-$ver.tgz" | base64 -w0)"
    if [ "$got" != "$sri" ]; then
        echo "bootstrap: $name@$ver tarball integrity $got, expected $sri" >&2
        rm -rf "$tmp"
        exit 1
    fi
    tar -xzf "$tmp/$name-$ver.tgz" -C "$tmp"
    mkdir -p "$dest"
    for f in "$@"; do cp "$tmp/package/$f" "$dest/"; done
    cp "$tmp/package/LICENSE" "$dest/$name.LICENSE"
    rm -f "$dest/.$name-"*
    touch "$dest/.$name-$ver"
    rm -rf "$tmp"
}
vendor_npm echarts 6.1.0 \
    'sha512-q0yaFPggC9FUdsWH4blavRWFmxdrIodbkoKNAjJudAI6CA9gNPxHtV2RcZNEepZVlk4yvBYkOkbk6HIVpIyHZA==' \
    dist/echarts.min.js
vendor_npm swagger-ui-dist 5.35.0 \
    'sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==' \
    swagger-ui-bundle.js swagger-ui.css
