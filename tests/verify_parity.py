"""The shipped model's golden windows through one runtime, against TFLM's outputs.

Imported by tests/test_verify_golden.py, and run as a script in the sidecar
environment .venv-tflite (tflite-runtime needs numpy < 2, which the test
environment's ai-edge-litert and tflite-micro do not):

    .venv-tflite/bin/python tests/verify_parity.py tflite-runtime reference

prints one JSON object: what :func:`compare` found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "gateway" / "models" / "basicmotions"


def golden() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "golden.json").read_text())


def meta() -> dict[str, Any]:
    return json.loads((MODEL_DIR / "model.json").read_text())


def compare(runtime: str, kernels: str, tolerance_lsb: int) -> dict[str, Any]:
    """Runs every golden window; labels must match TFLM's except where TFLM's top two
    scores lie within the tolerance (listed as near ties)."""
    sys.path.insert(0, str(ROOT))
    from gateway.verify.runtime import Runner

    runner = Runner(
        (MODEL_DIR / "model.tflite").read_bytes(),
        runtime=runtime,
        kernels=kernels,  # type: ignore[arg-type]
    )
    out = meta()["output"]
    diffs, mismatches, ties = [], [], []
    for i, w in enumerate(golden()["windows"]):
        want = w["tflm_output"]
        got = [
            round(s / out["scale"]) + out["zero_point"]
            for s in runner.run(bytes.fromhex(w["window_hex"])).probabilities
        ]
        diffs.append(max(abs(a - b) for a, b in zip(got, want, strict=True)))
        ranked = sorted(want, reverse=True)
        near_tie = ranked[0] - ranked[1] <= tolerance_lsb
        if near_tie:
            ties.append(i)
        if got.index(max(got)) != want.index(max(want)):
            mismatches.append({"window": i, "set": w["set"], "near_tie": near_tie})
    return {
        "runtime": runner.runtime,
        "kernels": kernels,
        "windows": len(diffs),
        "max_diff_lsb": max(diffs),
        "windows_differing": sum(d > 0 for d in diffs),
        "label_mismatches": mismatches,
        "near_ties": ties,
    }


def in_sidecar(script: str, *args: str) -> dict[str, Any]:
    """Runs ``tests/<script> args...`` in .venv-tflite (tflite-runtime, numpy < 2) and
    returns the JSON object it prints last; skips where tflite-runtime has no wheels."""
    import subprocess

    import pytest

    if sys.version_info >= (3, 12):
        pytest.skip("tflite-runtime has wheels up to Python 3.11 only: not testable here")
    sidecar = ROOT / ".venv-tflite" / "bin" / "python"
    if not sidecar.exists():
        pytest.fail(".venv-tflite is missing: scripts/setup.sh test makes it")
    done = subprocess.run(
        [str(sidecar), str(ROOT / "tests" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


if __name__ == "__main__":
    print(json.dumps(compare(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
