"""What the gateway concludes about one EVENT: pure, no runtime, no numpy.

The fields of :meth:`Verdict.fields` join the event's payload (gateway/fields.py,
docs/topics.md), so both bridges carry them with no code of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from gateway.verify.specs import Scores

Policy = Literal["annotate", "flag", "drop_disagreeing"]


class Unverified(StrEnum):
    """Why an event goes on without a verdict; each has its counter ``events_unverified_*``."""

    NO_WINDOW = "no_window"  # the node sent no feature window
    UNKNOWN_MODEL = "unknown_model"  # no model configured for the event's model id
    WINDOW_MISMATCH = "window_mismatch"  # dims or quantisation differ from the model's input
    BUSY = "busy"  # the worker was still busy with an earlier batch, or its queue was full
    LATE = "late"  # not done within verify.max_wait_ms
    FAILED = "failed"  # the runtime raised on this window


@dataclass(frozen=True, slots=True)
class Verdict:
    verified: bool
    reason: Unverified | None = None
    label: int | None = None
    label_name: str | None = None
    score: float | None = None
    # True: the node chose the gateway's label (or one tied with it); False: a label
    # clearly below it; None: within the runtimes' rounding of it, cannot tell
    agreement: bool | None = None
    alert: bool = False
    drop: bool = False
    kernels: str | None = None
    model: str | None = None  # id of the model the gateway ran (a verifier's own id)

    def fields(self) -> dict[str, Any]:
        if not self.verified:
            return {"verified": False, "unverified_reason": str(self.reason)}
        return {
            "verified": True,
            "gateway_label": self.label_name,
            "gateway_label_index": self.label,
            "gateway_score": self.score,
            "agreement": self.agreement,
            "verify_alert": self.alert,
            "verify_kernels": self.kernels,
            "verify_model": self.model,
        }


def unverified(reason: Unverified) -> Verdict:
    return Verdict(False, reason)


def judge(
    node_label: int,
    scores: Scores,
    *,
    tolerance_steps: int,
    labels: tuple[str, ...],
    policy: Policy,
    kernels: str,
    model: str,
) -> Verdict:
    """Compares the node's label with the gateway's run of the model on its window.

    The comparison is on ``scores.steps`` (the logits, where the model has a final
    softmax): the node agrees when it chose the gateway's top label or one tied with it;
    it cannot be told apart from the gateway's answer (``agreement`` None, never an
    alert) when its label's value is at most ``tolerance_steps`` below the top; beyond
    that it disagrees. A label the model does not have disagrees.
    """
    steps = scores.steps
    top = max(range(len(steps)), key=steps.__getitem__)
    agrees: bool | None
    if not 0 <= node_label < len(steps):
        agrees = False
    else:
        margin = steps[top] - steps[node_label]
        agrees = True if margin <= 0 else (None if margin <= tolerance_steps else False)
    return Verdict(
        True,
        label=top,
        label_name=labels[top] if top < len(labels) else None,
        score=round(scores.probabilities[top], 6),
        agreement=agrees,
        alert=agrees is False and policy == "flag",
        drop=agrees is False and policy == "drop_disagreeing",
        kernels=kernels,
        model=model,
    )
