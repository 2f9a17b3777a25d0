"""The shipped model against TFLM: golden vectors, live parity, and its committed artefacts.

golden.json holds TFLM's output for every held-out window, perturbed copies of them
(inputs near decision boundaries) and faulty copies (docs/verification.md). The
gateway's runtime with reference kernels must reproduce TFLM's labels exactly, except
where TFLM's own top two scores lie within the tolerance (listed), and every score
within the tolerance.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.verify_parity import MODEL_DIR, ROOT, compare, golden, in_sidecar, meta

# output steps within which scores count as equal and two labels as a near tie on these
# vectors: what they were measured with (verdicts compare logits: tests/test_verify_hard.py)
TOLERANCE = 12


def _check(found: dict) -> None:
    assert found["windows"] == len(golden()["windows"]) == 160
    assert found["max_diff_lsb"] <= TOLERANCE, found
    assert [m for m in found["label_mismatches"] if not m["near_tie"]] == [], found
    # the near ties are few and listed: a model whose windows sit on ties is no parity check
    assert len(found["near_ties"]) <= 4, found["near_ties"]


def test_ai_edge_litert_reference_kernels_reproduce_tflm() -> None:
    found = compare("ai-edge-litert", "reference", TOLERANCE)
    _check(found)
    print("ai-edge-litert reference:", found)


def test_tflite_runtime_reference_kernels_reproduce_tflm() -> None:
    found = in_sidecar("verify_parity.py", "tflite-runtime", "reference", str(TOLERANCE))
    assert found["runtime"] == "tflite-runtime"
    _check(found)
    print("tflite-runtime reference:", found)


def test_fast_kernels_are_measured_not_trusted() -> None:
    """Fast mode is for models that are not parity checks: it must still give the same
    labels on the held-out windows, but its scores may differ (measured, printed)."""
    found = compare("ai-edge-litert", "fast", TOLERANCE)
    held = [m for m in found["label_mismatches"] if m["set"] == "held_out"]
    assert held == [], found
    print("ai-edge-litert fast:", found)


def test_tflm_live_parity_on_the_held_out_windows() -> None:
    """TFLM itself, now, on the held-out and faulty windows: the same outputs as the
    committed golden vectors and as the gateway's runtime."""
    try:
        from tflite_micro.python.tflite_micro import runtime as tflm
    except ImportError:
        pytest.skip("tflite-micro (the TFLM interpreter) has x86_64 wheels only: not here")
    import numpy as np

    from gateway.verify.runtime import Runner

    content = (MODEL_DIR / "model.tflite").read_bytes()
    interp = tflm.Interpreter.from_bytes(content)
    ours = Runner(content, runtime="auto", kernels="reference")
    out = meta()["output"]
    checked = 0
    for w in golden()["windows"]:
        if w["set"] == "perturbed":
            continue
        x = np.frombuffer(bytes.fromhex(w["window_hex"]), dtype=np.int8).reshape(1, 100, 6)
        interp.set_input(x, 0)
        interp.invoke()
        live = [int(v) for v in interp.get_output(0)[0]]
        assert live == w["tflm_output"]
        scores = ours.run(x.tobytes()).probabilities
        got = [round(s / out["scale"]) + out["zero_point"] for s in scores]
        assert max(abs(a - b) for a, b in zip(got, live, strict=True)) <= TOLERANCE
        assert got.index(max(got)) == live.index(max(live))
        checked += 1
    assert checked == 80


def test_the_committed_artefacts_describe_one_model() -> None:
    content = (MODEL_DIR / "model.tflite").read_bytes()
    m = meta()
    digest = hashlib.sha256(content).digest()
    assert m["sha256"] == digest.hex() == golden()["model_sha256"]
    assert m["model_id"] == f"{int.from_bytes(digest[:4], 'little'):08x}"
    assert m["size_bytes"] == len(content) and len(content) < 16_384
    assert m["input"]["dims"] == [100, 6] and len(m["labels"]) == 4
    assert 0 < m["arena_bytes"] < 64 * 1024
    assert m["accuracy"]["int8_tflm"] >= 0.9
    # the firmware's C array is the same bytes
    c = (ROOT / "mcu_firmware" / "model" / "basicmotions_model.c").read_text()
    body = c.split("__attribute__((aligned(16))) = {", 1)[1].split("};", 1)[0]
    assert bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body)) == content
    h = (ROOT / "mcu_firmware" / "model" / "basicmotions_model.h").read_text()
    assert f"BASICMOTIONS_MODEL_ID 0x{m['model_id']}u" in h
    assert f"BASICMOTIONS_ARENA_BYTES {m['arena_bytes']}u" in h
    # the held-out windows are the node's: quantised with the model's input parameters
    held = [w for w in golden()["windows"] if w["set"] == "held_out"]
    assert len(held) == 40 and all(len(w["window_hex"]) == 1200 for w in held)
