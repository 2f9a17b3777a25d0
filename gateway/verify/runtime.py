"""One model in one interpreter: ai-edge-litert, or tflite-runtime where it is missing.

Both have the same ``Interpreter`` API. ai-edge-litert is maintained and takes numpy 2
(aarch64 and x86_64, Python 3.10 and later); tflite-runtime 2.14 is frozen, needs
numpy < 2 and Python <= 3.11, and is the only one with armv7l wheels (32-bit
Raspberry Pi OS).

Reference kernels (``OpResolverType.BUILTIN_REF``) compute what TFLM computes on the
node: TFLM is built from the same reference kernels. The default kernels (XNNPACK and
the optimised ones) round differently and can flip a label near a tie, which a
parity check would report as a disagreement the node did not cause
(docs/verification.md, "Kernels and tolerance").
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Final, Literal

import numpy as np

from gateway.verify.specs import RUNTIMES, ModelSpec, TensorSpec

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
        if self.input.dtype != "int8":
            raise ModelError(f"its input is {self.input.dtype}; nodes send int8 windows")
        if self.output.dtype not in ("int8", "float32") or len(self.output.shape) != 2:
            raise ModelError(
                f"its output is {self.output.dtype} {list(self.output.shape)}; verification "
                "takes scores as int8 or float32 of shape [1, labels]"
            )
        self._in_index = inputs[0]["index"]
        self._out_index = outputs[0]["index"]

    @property
    def spec(self) -> ModelSpec:
        step = self.output.scale if self.output.dtype == "int8" else 1 / 256
        return ModelSpec(self.runtime, self.kernels, self.input, self.output.shape[-1], step)

    def run(self, window: bytes) -> list[float]:
        """The model's scores for one int8 window, as probabilities."""
        x = np.frombuffer(window, dtype=np.int8).reshape(self.input.shape)
        self._interp.set_tensor(self._in_index, x)
        self._interp.invoke()
        y = self._interp.get_tensor(self._out_index)[0]
        if self.output.dtype == "int8":
            return [(int(q) - self.output.zero_point) * self.output.scale for q in y]
        return [float(v) for v in y]
