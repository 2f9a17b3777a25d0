#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs every check and test:
# lint, types, the C library's host tests and ARM size build, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test

echo "== ruff"
.venv/bin/ruff check gateway tests bench training nodered_flows thingsboard_rules
.venv/bin/ruff format --check gateway tests bench training nodered_flows thingsboard_rules
echo "== mypy (strict, gateway/)"
.venv/bin/mypy
echo "== C protocol library: host tests (HMAC on/off, node profile) and Cortex-M4 build"
make -s -C mcu_firmware/protocol clean
make -s -C mcu_firmware/protocol test tools
make -s -C mcu_firmware/protocol size
echo "== pytest"
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit $status
