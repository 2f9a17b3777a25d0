"""One model in one interpreter: ai-edge-litert, or tflite-runtime where it is missing.

Both have the same ``Interpreter`` API. ai-edge-litert is maintained and takes numpy 2
(aarch64 and x86_64, Python 3.10 and later); tflite-runtime 2.14 is frozen, needs
numpy < 2 and Python <= 3.11, and is the only one with armv7l wheels (32-bit
Raspberry Pi OS).

Reference kernels (``OpResolverType.BUILTIN_REF``) compute what TFLM computes on the
node up to the rounding of a requantisation: ai-edge-litert's fully-connected kernel
rounds one step differently from TFLM's. So a verdict compares the logits (the input of
the final SOFTMAX), where that difference is one step, not the softmax's output, where
one logit step can move a score by dozens (docs/verification.md, "Kernels and
tolerance"). The default kernels (XNNPACK and the optimised ones) differ in every
layer, and the differences add up.
"""

from __future__ import annotations

import importlib
import math
from types import ModuleType
from typing import Any, Final, Literal

import numpy as np

from gateway.verify.specs import RUNTIMES, ModelSpec, Scores, TensorSpec

Kernels = Literal["reference", "fast"]

EDGETPU_LIBRARY: Final = "libedgetpu.so.1"


class ModelError(Exception):
    """A file the runtime cannot use as a verification model; the text says why."""


def runtime_module(choice: str) -> tuple[str, ModuleType]:
    """The runtime's name and its interpreter module; "auto" prefers ai-edge-litert."""
    names = list(RUNTIMES) if choice == "auto" else [choice]
    for name in names:
        try:
            return name, importlib.import_module(f"{RUNTIMES[name]}.interpreter")
        except ImportError:
            continue
    raise ModelError(f"no runtime among {', '.join(names)} can be imported")


def _spec(detail: dict[str, Any]) -> TensorSpec:
    scale, zero_point = detail["quantization"]
    return TensorSpec(
        tuple(int(d) for d in detail["shape"]),
        np.dtype(detail["dtype"]).name,
        float(scale),
        int(zero_point),
    )


class Runner:
    """A loaded model. Not thread-safe: the worker process runs it on its one thread."""

    def __init__(
        self, content: bytes, *, runtime: str, kernels: Kernels, delegate: str = "none"
    ) -> None:
        self.runtime, module = runtime_module(runtime)
        self.kernels = kernels
        options: dict[str, Any] = {"num_threads": 1}
        if kernels == "reference":
            options["experimental_op_resolver_type"] = module.OpResolverType.BUILTIN_REF
        if delegate == "edgetpu":
            try:
                options["experimental_delegates"] = [module.load_delegate(EDGETPU_LIBRARY)]
            except (ValueError, OSError) as exc:
                raise ModelError(f"the Edge TPU delegate does not load: {exc}") from None
        try:
            self._interp = module.Interpreter(model_content=content, **options)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"not a model the runtime can load ({exc})") from None
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelError(
                f"{len(inputs)} input(s) and {len(outputs)} output(s); verification takes "
                "a model with one of each"
            )
        self.input, self.output = _spec(inputs[0]), _spec(outputs[0])
        logits = _softmax_input(self._interp, outputs[0]["index"])
        if self.input.dtype != "int8":
            raise ModelError(f"its input is {self.input.dtype}; nodes send int8 windows")
        if self.output.dtype not in ("int8", "float32") or len(self.output.shape) != 2:
            raise ModelError(
                f"its output is {self.output.dtype} {list(self.output.shape)}; verification "
                "takes scores as int8 or float32 of shape [1, labels]"
            )
        self._in_index = inputs[0]["index"]
        self._out_index = outputs[0]["index"]
        # one output step as a probability: what a verdict on the scores counts in
        self._score_step = self.output.scale if self.output.dtype == "int8" else 1 / 256
        if logits is None:
            self.decision = self.output
            self._decision_index = self._out_index
        else:
            self.decision = _spec(logits)
            self._decision_index = logits["index"]

    @property
    def decides_on(self) -> str:
        return "scores" if self._decision_index == self._out_index else "logits"

    @property
    def spec(self) -> ModelSpec:
        labels = self.output.shape[-1]
        ties = 0
        if self.decides_on == "logits":
            ties = softmax_tie_steps(labels, self.output.scale, self.decision.scale)
        return ModelSpec(self.runtime, self.kernels, self.input, labels, self.decides_on, ties)

    def run(self, window: bytes) -> Scores:
        """The model's scores for one int8 window, and the values its verdict compares."""
        x = np.frombuffer(window, dtype=np.int8).reshape(self.input.shape)
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        scores = _real(self._interp.get_tensor(self._out_index)[0], self.output)
        if self._decision_index == self._out_index:
            return Scores(scores, [v / self._score_step for v in scores])
        logits = self._interp.get_tensor(self._decision_index)[0]
        return Scores(scores, [float(int(q) - self.decision.zero_point) for q in logits])


def _real(values: Any, spec: TensorSpec) -> list[float]:
    if spec.dtype == "int8":
        return [(int(q) - spec.zero_point) * spec.scale for q in values]
    return [float(v) for v in values]


def _softmax_input(interp: Any, output_index: int) -> dict[str, Any] | None:
    """The int8 tensor the model's output SOFTMAX takes (its logits), or None when the
    output is not made by a SOFTMAX from an int8 tensor.

    The op list is the interpreters' ``_get_ops_details`` (tests/test_conformance.py
    pins it for both runtimes). A SOFTMAX is a model's last op, so its input is still
    in the arena when ``invoke`` returns."""
    for op in interp._get_ops_details():
        if output_index in op["outputs"]:
            if op["op_name"] != "SOFTMAX" or len(op["inputs"]) != 1:
                return None
            index = int(op["inputs"][0])
            detail = next(d for d in interp.get_tensor_details() if d["index"] == index)
            return detail if np.dtype(detail["dtype"]).name == "int8" else None
    return None


def softmax_tie_steps(labels: int, output_scale: float, logit_scale: float) -> int:
    """How many logit steps apart two labels can be and still get the same int8 score.

    The top label's probability is at least 1/labels, so a gap of d between its logit
    and the next one's makes their scores differ by at least (1 - e^-d) / labels. Below
    two output steps (one for rounding, one for the integer softmax's approximation of
    exp) both may get the same score, and a node then reports the first of them: the
    verdict must not call that a disagreement. The largest whole number of logit steps
    that stays below that gap is the answer.
    """
    room = 2 * labels * output_scale
    if room >= 1:  # the output cannot separate two labels at all: no logit gap is safe
        return 255
    gap = -math.log1p(-room)
    return max(0, math.ceil(gap / logit_scale) - 1)
