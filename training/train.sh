#!/usr/bin/env bash
# Builds the pinned training environment (once) and trains the shipped model:
#   bash training/train.sh
# About 1.6 GB in training/.venv and a minute the first time, 20 s after that. x86_64
# only (tflite-micro, the TFLM interpreter that computes the golden outputs, has no
# other wheels). Two runs on one machine write byte-identical files.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=training/.venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --requirement training/requirements.txt
fi
"$venv/bin/python" training/train_basicmotions.py
