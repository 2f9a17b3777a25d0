"""A hard set for verification, with TFLM as the oracle: windows the shipped model was
never measured on (none of golden.json's), many of them on a decision boundary.

- 2,000 perturbed held-out windows (gain, offset, noise, time shift, an axis stuck);
- 1,500 random windows (uniform int8, and random walks);
- boundary windows: a mix of two windows TFLM labels differently, bisected until TFLM's
  top two logits are at most one step apart, then nudged one input value at a time for
  more exact ties (at least 1,500 windows with a top-two gap of 0 or 1 logit step);
- rounding windows: nudges of those ties until 150 are found where ``finder`` (another
  runtime's logits; the tests pass ai-edge-litert's reference kernels) rounds one of
  TFLM's top two logits differently: the windows where a verdict on output scores
  flags an honest node.

``build()`` needs the TFLM interpreter (tflite-micro, x86_64 wheels only); it is
deterministic (seeded; TFLM is integer arithmetic). ``measure()`` runs one runtime on a
built set and judges every window the way the gateway does; run as a script, it reads a
set from a file, for the tflite-runtime environment (.venv-tflite), which cannot hold
tflite-micro:

    .venv-tflite/bin/python tests/verify_hard.py SET.json tflite-runtime reference

prints one JSON object: what :func:`measure` found.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "gateway" / "models" / "basicmotions" / "model.tflite"
GOLDEN = ROOT / "gateway" / "models" / "basicmotions" / "golden.json"
SHAPE = (100, 6)
LOGITS = 15  # the shipped model's FULLY_CONNECTED output, the SOFTMAX's input
# the tolerance the gateway used before verdicts compared logits: 12 output steps
OLD_TOLERANCE = 12


class Oracle:
    """TFLM on the shipped model: int8 logits and output of one window."""

    def __init__(self) -> None:
        from tflite_micro.python.tflite_micro import runtime as tflm

        self._interp = tflm.Interpreter.from_bytes(
            MODEL.read_bytes(), intrepreter_config=tflm.InterpreterConfig.kPreserveAllTensors
        )

    def __call__(self, window: Any) -> tuple[list[int], list[int]]:
        self._interp.set_input(window.reshape(1, *SHAPE), 0)
        self._interp.invoke()
        logits = self._interp.GetTensor(LOGITS, 0)["tensor_data"].reshape(-1)
        return [int(v) for v in logits], [int(v) for v in self._interp.get_output(0)[0]]


def _gap(logits: list[int]) -> int:
    top, second = sorted(logits, reverse=True)[:2]
    return top - second


def build(
    seed: int = 30, finder: Callable[[bytes], list[int]] | None = None
) -> list[dict[str, Any]]:
    """The hard set: each window with its kind and TFLM's logits and output.
    ``finder``: a runtime's int8 logits of a window, to find the rounding windows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    oracle = Oracle()
    golden = json.loads(GOLDEN.read_text())
    held = [
        np.frombuffer(bytes.fromhex(w["window_hex"]), dtype=np.int8).reshape(SHAPE)
        for w in golden["windows"]
        if w["set"] == "held_out"
    ]
    out: list[dict[str, Any]] = []
    seen: set[bytes] = set()

    def add(window: Any, kind: str) -> tuple[list[int], list[int]]:
        x = np.clip(np.rint(window), -128, 127).astype(np.int8)
        logits, output = oracle(x)
        raw = x.tobytes()
        if raw not in seen:
            seen.add(raw)
            out.append({"kind": kind, "hex": raw.hex(), "logits": logits, "output": output})
        return logits, output

    for i in range(2000):
        x = held[i % len(held)].astype(float)
        x = x * rng.uniform(0.6, 1.4, size=(1, 6)) + rng.integers(-12, 13, size=(1, 6))
        x = np.roll(x, int(rng.integers(-20, 21)), axis=0)
        x += rng.normal(0, rng.uniform(0.5, 25), size=SHAPE)
        if rng.random() < 0.1:
            x[:, rng.integers(0, 6)] = rng.integers(-128, 128)  # an axis stuck
        add(x, "perturbed")
    for _ in range(1000):
        add(rng.integers(-128, 128, size=SHAPE), "random")
    for _ in range(500):
        steps = rng.normal(0, rng.uniform(1, 12), size=SHAPE)
        add(np.cumsum(steps, axis=0) + rng.integers(-60, 61, size=(1, 6)), "random_walk")
    pool = [np.frombuffer(bytes.fromhex(w["hex"]), dtype=np.int8) for w in out]
    boundary = 0
    attempts = 0
    while boundary < 1500 and attempts < 20_000:
        attempts += 1
        a, b = (pool[int(i)].reshape(SHAPE).astype(float) for i in rng.integers(0, len(pool), 2))
        la, lb = (oracle(np.clip(np.rint(w), -128, 127).astype(np.int8))[0] for w in (a, b))
        if int(np.argmax(la)) == int(np.argmax(lb)):
            continue
        lo, hi = 0.0, 1.0
        for _ in range(14):
            mid = (lo + hi) / 2
            logits, _ = oracle(np.clip(np.rint((1 - mid) * a + mid * b), -128, 127).astype(np.int8))
            if int(np.argmax(logits)) == int(np.argmax(la)):
                lo = mid
            else:
                hi = mid
        for alpha in (lo, hi):
            x = (1 - alpha) * a + alpha * b
            logits, _ = add(x, "boundary")
            boundary += _gap(logits) <= 1
            for _ in range(6):  # one input value moved by one step: more exact ties
                y = np.clip(np.rint(x), -128, 127)
                r, c = int(rng.integers(0, SHAPE[0])), int(rng.integers(0, SHAPE[1]))
                y[r, c] = np.clip(y[r, c] + rng.choice([-1, 1]), -128, 127)
                logits, _ = add(y, "boundary")
                boundary += _gap(logits) <= 1
    ties = [w for w in out if w["kind"] == "boundary" and _gap(w["logits"]) <= 1]
    found = 0
    while finder is not None and found < 150 and attempts < 400_000:
        attempts += 1
        base = ties[int(rng.integers(0, len(ties)))]
        y = np.frombuffer(bytes.fromhex(base["hex"]), dtype=np.int8).reshape(SHAPE).astype(int)
        for _ in range(int(rng.integers(1, 4))):
            r, c = int(rng.integers(0, SHAPE[0])), int(rng.integers(0, SHAPE[1]))
            y[r, c] = np.clip(y[r, c] + rng.choice([-1, 1]), -128, 127)
        x = y.astype(np.int8)
        logits, _ = oracle(x)
        if _gap(logits) > 1:
            continue
        theirs = finder(x.tobytes())
        first, second = sorted(range(len(logits)), key=lambda k: -logits[k])[:2]
        if theirs[first] != logits[first] or theirs[second] != logits[second]:
            before = len(out)
            add(x, "rounding")
            found += len(out) > before
    return out


def node_label(output: list[int]) -> int:
    """What a node running TFLM reports: the first of the highest int8 scores."""
    return output.index(max(output))


def measure(windows: list[dict[str, Any]], runtime: str, kernels: str) -> dict[str, Any]:
    """One runtime on the set, judged as the gateway judges (policy "flag", the default
    tolerance): false alerts for a node that reports TFLM's label, alerts for every label
    clearly below TFLM's top (by more than the tolerance plus two steps), and what the
    verdict before this one (output scores within 12 steps) would have said."""
    sys.path.insert(0, str(ROOT))
    from gateway.config import VerifySection
    from gateway.verify.runtime import Runner
    from gateway.verify.verdict import judge

    runner = Runner(MODEL.read_bytes(), runtime=runtime, kernels=kernels)  # type: ignore[arg-type]
    spec = runner.spec
    tolerance = VerifySection().tolerance_steps + spec.softmax_tie_steps
    out_scale, out_zero = runner.output.scale, runner.output.zero_point
    found: dict[str, Any] = {
        "runtime": runner.runtime,
        "kernels": kernels,
        "decides_on": spec.decides_on,
        "tolerance_steps": tolerance,
        "windows": len(windows),
        "ties": sum(_gap(w["logits"]) == 0 for w in windows),
        "one_step": sum(_gap(w["logits"]) == 1 for w in windows),
        "logit_max_diff": 0,
        "logits_differing": 0,
        "outputs_differing": 0,
        "labels_differing": 0,
        "false_alerts": [],
        "undecided": 0,
        "old_false_alerts": 0,
        "clear_errors": 0,
        "clear_errors_flagged": 0,
    }
    for i, w in enumerate(windows):
        scores = runner.run(bytes.fromhex(w["hex"]))
        got_out = [round(p / out_scale) + out_zero for p in scores.probabilities]
        diff = max(
            abs(int(a) - b + _zero(runner)) for a, b in zip(scores.steps, w["logits"], strict=True)
        )
        found["logit_max_diff"] = max(found["logit_max_diff"], diff)
        found["logits_differing"] += diff > 0
        found["outputs_differing"] += got_out != w["output"]
        found["labels_differing"] += node_label(got_out) != node_label(w["output"])
        honest = node_label(w["output"])

        def verdict(label: int, scores: Any = scores) -> Any:
            return judge(
                label,
                scores,
                tolerance_steps=tolerance,
                labels=(),
                policy="flag",
                kernels=kernels,
                model="",
            )

        v = verdict(honest)
        if v.alert:
            found["false_alerts"].append({"window": i, "kind": w["kind"], "gap": _gap(w["logits"])})
        found["undecided"] += v.agreement is None
        top = node_label(got_out)
        found["old_false_alerts"] += (
            honest != top and got_out[top] - got_out[honest] > OLD_TOLERANCE
        )
        for label, value in enumerate(w["logits"]):
            if max(w["logits"]) - value > tolerance + 2:
                found["clear_errors"] += 1
                found["clear_errors_flagged"] += verdict(label).alert
    return found


def _zero(runner: Any) -> int:
    """The logits' zero point: ``Scores.steps`` are zero-based, TFLM's raw int8."""
    return int(runner.decision.zero_point)


if __name__ == "__main__":
    hard = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps(measure(hard, sys.argv[2], sys.argv[3])))
