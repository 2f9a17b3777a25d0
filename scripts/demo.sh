#!/usr/bin/env bash
# Sets up a fresh machine (scripts/setup.sh) and runs the demo: simulated nodes on
# pseudo-terminals -> gateway -> outbox -> an embedded MQTT broker, with a live view.
# Extra arguments go to `tinyml-gateway demo` (e.g. --nodes 8 --rate 2 --duration 60).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
exec .venv/bin/tinyml-gateway demo "$@"
