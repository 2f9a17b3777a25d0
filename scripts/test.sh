#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs every check and test:
# lint, types, the node firmware's host tests and Cortex-M4 builds, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test

echo "== ruff"
.venv/bin/ruff check gateway tests bench training nodered_flows thingsboard_rules mcu_firmware/tools packaging
.venv/bin/ruff format --check gateway tests bench training nodered_flows thingsboard_rules mcu_firmware/tools packaging
echo "== mypy (strict, gateway/)"
.venv/bin/mypy
echo "== node firmware: host tests of the protocol library and the node core, Cortex-M4 builds"
make -s -C mcu_firmware clean
make -s -C mcu_firmware test
make -s -C mcu_firmware/protocol tools size
make -s -C mcu_firmware qemu size
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
