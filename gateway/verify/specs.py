"""What the worker reports of each model it loaded: plain data, no numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

RUNTIMES: Final = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime"}
"""The runtimes verification takes, in the order "auto" tries them: name -> package."""


@dataclass(frozen=True, slots=True)
class TensorSpec:
    shape: tuple[int, ...]
    dtype: str
    scale: float
    zero_point: int


@dataclass(frozen=True, slots=True)
class ModelSpec:
    runtime: str  # the runtime that loaded it: ai-edge-litert or tflite-runtime
    kernels: str
    input: TensorSpec
    labels: int  # scores per window
    step: float  # one output step as a probability: what the tie tolerance counts in
