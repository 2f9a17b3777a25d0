"""The models the gateway runs, keyed by the model id nodes report.

A node reports its model as a 32-bit id, the first 4 bytes of the model file's
SHA-256 (little-endian, docs/protocol.md). Every configured file is read, hashed and
loaded at start: a file that is missing, changed, not a model, or shaped unlike what
the configuration says nodes send is a configuration error naming it, not an event
that fails later.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

from gateway.config import VerifyModelSection, VerifySection
from gateway.errors import ConfigError
from gateway.protocol import FeatureWindow
from gateway.verify.runtime import ModelError, Runner
from gateway.verify.verdict import Policy


def model_id_of(sha256: bytes) -> int:
    return int.from_bytes(sha256[:4], "little")


@dataclass(frozen=True, slots=True)
class ModelEntry:
    model_id: int  # the node model it verifies
    own_id: int  # of the file the gateway runs: differs for a separate verifier
    file: Path
    labels: tuple[str, ...] | None
    policy: Policy
    runner: Runner

    @property
    def dims(self) -> tuple[int, ...]:
        return self.runner.input.shape[1:]

    def window_problem(self, w: FeatureWindow) -> str | None:
        """Why the model cannot take this window, or None."""
        spec = self.runner.input
        if w.dims not in (self.dims, spec.shape):
            return f"dims {list(w.dims)}, the model takes {list(self.dims)}"
        if w.zero_point != spec.zero_point or not math.isclose(w.scale, spec.scale, rel_tol=1e-6):
            return (
                f"quantisation scale {w.scale:g} zero point {w.zero_point}, the model takes "
                f"scale {spec.scale:g} zero point {spec.zero_point}"
            )
        return None


def load_registry(section: VerifySection) -> dict[int, ModelEntry]:
    """Every configured model, loaded; raises ConfigError listing each bad one."""
    entries: dict[int, ModelEntry] = {}
    problems: list[tuple[str, str, str]] = []
    for i, m in enumerate(section.models):
        at = f"verify.models.{i}"
        try:
            entry = _load(m, section.runtime)
        except _Problem as p:
            problems.append((f"{at}.{p.field}", p.message, p.hint))
            continue
        if entry.model_id in entries:
            problems.append(
                (
                    f"{at}.verifies" if m.verifies else f"{at}.file",
                    f"model id {entry.model_id:08x} has a model already "
                    f"({entries[entry.model_id].file})",
                    "give each node model one entry",
                )
            )
            continue
        entries[entry.model_id] = entry
    if problems:
        raise ConfigError(problems)
    return entries


class _Problem(Exception):
    def __init__(self, field: str, message: str, hint: str) -> None:
        super().__init__(message)
        self.field, self.message, self.hint = field, message, hint


def _load(m: VerifyModelSection, runtime: str) -> ModelEntry:
    try:
        content = m.file.read_bytes()
    except OSError as exc:
        raise _Problem("file", f"cannot read {m.file}: {exc.strerror}", "check the path") from None
    digest = hashlib.sha256(content).digest()
    if digest.hex() != m.sha256:
        raise _Problem(
            "sha256",
            f"{m.file} has SHA-256 {digest.hex()}, not the configured {m.sha256}",
            "the file changed since it was configured: if it is the model you mean, "
            "put its sha256sum here",
        )
    try:
        runner = Runner(content, runtime=runtime, kernels=m.kernels, delegate=m.delegate)
    except ModelError as exc:
        raise _Problem("file", f"{m.file}: {exc}", "give a .tflite model file") from None
    dims = runner.input.shape[1:]
    if m.input_dims is not None and tuple(m.input_dims) != dims:
        raise _Problem(
            "input_dims",
            f"{m.file} takes windows of dims {list(dims)}, not the {m.input_dims} nodes send",
            "configure the model the nodes run, or a verifier with the same input",
        )
    if m.labels is not None and len(m.labels) != runner.labels:
        raise _Problem(
            "labels",
            f"{m.file} has {runner.labels} outputs, and {len(m.labels)} labels are given",
            "give one name per output, in output order",
        )
    own = model_id_of(digest)
    return ModelEntry(
        int(m.verifies, 16) if m.verifies else own,
        own,
        m.file,
        tuple(m.labels) if m.labels is not None else None,
        m.policy,
        runner,
    )
