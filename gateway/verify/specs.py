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
    # what a verdict compares: "logits", the int8 input of the model's final SOFTMAX, or
    # "scores", its output (a model without one), in steps of that tensor's scale
    decides_on: str
    # logit steps within which the int8 softmax can give two labels the same score, from
    # the model's quantisation (docs/verification.md): 0 for most models
    softmax_tie_steps: int


@dataclass(frozen=True, slots=True)
class Scores:
    """One window's result: the model's scores as probabilities, and the values a verdict
    compares (``ModelSpec.decides_on``) in steps of their tensor's scale."""

    probabilities: list[float]
    steps: list[float]
