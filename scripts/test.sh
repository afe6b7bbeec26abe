#!/usr/bin/env bash
# The README's test command: install what is needed, lint, then run the whole suite
# (real mosquitto, influxd and postgres are started by the test fixtures on free loopback ports).
#
# The 10-minute soak (tests marked `slow`) mostly waits for its faults, so it runs beside the rest of
# the suite in a second pytest process; the wall time is about the soak's. `scripts/test.sh -k NAME`
# (any pytest arguments) runs only the selected tests, without the soak.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit 1
.venv/bin/ruff check . || exit 1

out=var/test-results
mkdir -p "$out"
rm -f "$out"/*.xml
if [ $# -gt 0 ]; then
    exec .venv/bin/python -m pytest "$@"
fi
.venv/bin/python -m pytest -m slow -p no:cacheprovider --junitxml="$out/soak.xml" >"$out/soak.log" 2>&1 &
soak_pid=$!
.venv/bin/python -m pytest -m "not slow" -p no:cacheprovider --junitxml="$out/main.xml"
main_rc=$?
wait "$soak_pid"
soak_rc=$?
echo "---------------------------------------------------------------- soak (tests marked slow)"
tail -n 25 "$out/soak.log"
.venv/bin/python - "$out/main.xml" "$out/soak.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET

tests = failed = skipped = 0
for path in sys.argv[1:]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        failed += 1          # a run that left no report counts as a failure
        continue
    for s in root.iter("testsuite"):
        t, f, e, sk = (int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
        tests += t
        failed += f + e
        skipped += sk
print(f"energyhost: {tests - failed - skipped} passed, {failed} failed, {skipped} skipped")
PY
[ "$main_rc" -eq 0 ] && [ "$soak_rc" -eq 0 ]
