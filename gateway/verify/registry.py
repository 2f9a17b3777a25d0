"""The models the gateway runs, keyed by the model id nodes report.

A node reports its model as a 32-bit id, the first 4 bytes of the model file's
SHA-256 (little-endian, docs/protocol.md). At start every configured file is read and
hashed here (:func:`read_models`), then loaded by the worker process, whose report of
each (:class:`ModelSpec`) is checked against the configuration (:func:`entries`). A
file that is missing, changed, not a model, or shaped unlike what the configuration
says nodes send is a configuration error naming it, not an event that fails later.
No numpy here: this runs in the gateway's own process.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.config import VerifyModelSection, VerifySection
from gateway.errors import ConfigError
from gateway.protocol import FeatureWindow, model_id
from gateway.verify.specs import ModelSpec
from gateway.verify.verdict import Policy
from gateway.verify.worker import ModelLoad

Problem = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class ModelFile:
    """A configured model file, read and hashed."""

    index: int  # in [[verify.models]], and in the worker's list
    cfg: VerifyModelSection
    content: bytes
    own_id: int  # of this file
    model_id: int  # of the node model it verifies: own_id unless it is a separate verifier

    @property
    def load(self) -> ModelLoad:
        return self.content, self.cfg.kernels, self.cfg.delegate


@dataclass(frozen=True, slots=True)
class ModelEntry:
    key: int  # the model's index in the worker
    model_id: int
    own_id: int
    file: Path
    labels: tuple[str, ...] | None
    policy: Policy
    spec: ModelSpec

    @property
    def dims(self) -> tuple[int, ...]:
        return self.spec.input.shape[1:]

    def window_problem(self, w: FeatureWindow) -> str | None:
        """Why the model cannot take this window, or None."""
        spec = self.spec.input
        if w.dims not in (self.dims, spec.shape):
            return f"dims {list(w.dims)}, the model takes {list(self.dims)}"
        if w.zero_point != spec.zero_point or not math.isclose(w.scale, spec.scale, rel_tol=1e-6):
            return (
                f"quantisation scale {w.scale:g} zero point {w.zero_point}, the model takes "
                f"scale {spec.scale:g} zero point {spec.zero_point}"
            )
        return None


def read_models(section: VerifySection) -> list[ModelFile]:
    """Every configured file, read and hashed; raises ConfigError listing each bad one."""
    files: list[ModelFile] = []
    problems: list[Problem] = []
    by_id: dict[int, ModelFile] = {}
    for i, m in enumerate(section.models):
        at = f"verify.models.{i}"
        try:
            content = m.file.read_bytes()
        except OSError as exc:
            problems.append(
                (f"{at}.file", f"cannot read {m.file}: {exc.strerror}", "check the path")
            )
            continue
        digest = hashlib.sha256(content).digest()
        if digest.hex() != m.sha256:
            problems.append(
                (
                    f"{at}.sha256",
                    f"{m.file} has SHA-256 {digest.hex()}, not the configured {m.sha256}",
                    "the file changed since it was configured: if it is the model you mean, "
                    "put its sha256sum here",
                )
            )
            continue
        own = model_id(digest)
        f = ModelFile(i, m, content, own, int(m.verifies, 16) if m.verifies else own)
        if f.model_id in by_id:
            problems.append(
                (
                    f"{at}.verifies" if m.verifies else f"{at}.file",
                    f"model id {f.model_id:08x} has a model already ({by_id[f.model_id].cfg.file})",
                    "give each node model one entry",
                )
            )
            continue
        by_id[f.model_id] = f
        files.append(f)
    if problems:
        raise ConfigError(problems)
    return files


def check_models(section: VerifySection) -> dict[int, ModelEntry]:
    """Reads, loads and checks every model in this process (check-config, the tests)."""
    from gateway.verify.worker import inspect

    files = read_models(section)
    return entries(files, inspect(section.runtime, [f.load for f in files]))


def entries(files: Sequence[ModelFile], specs: Sequence[ModelSpec | str]) -> dict[int, ModelEntry]:
    """The loaded models by the node model id they verify; raises ConfigError for a model
    the runtime could not load or that does not fit its configuration."""
    out: dict[int, ModelEntry] = {}
    problems: list[Problem] = []
    for key, (f, spec) in enumerate(zip(files, specs, strict=True)):
        if isinstance(spec, str):
            problems.append(
                (
                    f"verify.models.{f.index}.file",
                    f"{f.cfg.file}: {spec}",
                    "give a .tflite model file",
                )
            )
            continue
        problem = _misfit(f, spec)
        if problem is not None:
            problems.append(problem)
            continue
        labels = tuple(f.cfg.labels) if f.cfg.labels is not None else None
        out[f.model_id] = ModelEntry(
            key, f.model_id, f.own_id, f.cfg.file, labels, f.cfg.policy, spec
        )
    if problems:
        raise ConfigError(problems)
    return out


def _misfit(f: ModelFile, spec: ModelSpec) -> Problem | None:
    """How a loaded model differs from what its configuration says, or None."""
    at, m = f"verify.models.{f.index}", f.cfg
    dims = spec.input.shape[1:]
    if m.input_dims is not None and tuple(m.input_dims) != dims:
        return (
            f"{at}.input_dims",
            f"{m.file} takes windows of dims {list(dims)}, not the {m.input_dims} nodes send",
            "configure the model the nodes run, or a verifier with the same input",
        )
    if m.labels is not None and len(m.labels) != spec.labels:
        return (
            f"{at}.labels",
            f"{m.file} has {spec.labels} outputs, and {len(m.labels)} labels are given",
            "give one name per output, in output order",
        )
    return None
