#!/usr/bin/env bash
# Prepares a fresh Debian/Raspberry Pi OS machine for the demo and the tests:
# system packages (compilers, Mosquitto and its command-line clients for the benchmarks, openssl for the TLS tests) and a project virtualenv in .venv.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential make python3-venv mosquitto mosquitto-clients openssl gcc-arm-none-eabi libnewlib-arm-none-eabi)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Debian mosquitto package starts a broker on 1883; the tests start their own
# on free ports and never need that one.

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev,demo]"
echo "setup: ready (.venv)"
