"""The shipped model's held-out windows, as a simulated node sends them.

gateway/models/basicmotions/golden.json holds each quantised held-out BasicMotions
window with the output TFLM computed for it, and, for each, a copy with a sensor
fault that changes TFLM's label. A simulated node "runs" the model by looking its
window up: label and scores are what TFLM produced, so the gateway's verifier agrees
with it exactly where the real node would be right. Plain JSON: the simulator never
needs numpy or a runtime.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from gateway.protocol import FeatureWindow, model_id
from gateway.protocol.constants import SCORE_SCALE

PACKAGE = "gateway.models.basicmotions"


@dataclass(frozen=True, slots=True)
class Inference:
    """One window and what TFLM made of it, in the EVENT's terms."""

    window: FeatureWindow
    label: int
    score: int  # of the label, SCORE_SCALE = 1.0
    scores: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    sha256: bytes
    labels: tuple[str, ...]
    held_out: tuple[Inference, ...]
    # per held-out window: the same window with a sensor fault, and TFLM's output on it
    corrupted: tuple[Inference, ...]

    @property
    def model_id(self) -> int:
        return model_id(self.sha256)


def _read(name: str) -> Any:
    return json.loads(resources.files(PACKAGE).joinpath(name).read_text(encoding="utf-8"))


@functools.cache
def dataset() -> Dataset:
    meta, golden = _read("model.json"), _read("golden.json")
    dims = tuple(meta["input"]["dims"])
    scale, zero_point = meta["input"]["scale"], meta["input"]["zero_point"]
    out_scale, out_zp = meta["output"]["scale"], meta["output"]["zero_point"]

    def inference(entry: dict[str, Any]) -> Inference:
        q = entry["tflm_output"]
        scores = tuple(min(SCORE_SCALE, round((v - out_zp) * out_scale * SCORE_SCALE)) for v in q)
        label = max(range(len(q)), key=q.__getitem__)
        window = FeatureWindow(dims, scale, zero_point, bytes.fromhex(entry["window_hex"]))
        return Inference(window, label, scores[label], scores)

    windows = golden["windows"]
    held = tuple(inference(w) for w in windows if w["set"] == "held_out")
    faulty = {w["of"]: inference(w) for w in windows if w["set"] == "corrupted"}
    if sorted(faulty) != list(range(len(held))):
        raise ValueError("golden.json: every held-out window needs its corrupted copy")
    return Dataset(
        meta["name"],
        bytes.fromhex(meta["sha256"]),
        tuple(meta["labels"]),
        held,
        tuple(faulty[i] for i in range(len(held))),
    )
