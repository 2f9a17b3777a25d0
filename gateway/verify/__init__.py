"""Verification of node decisions by a model run on the gateway (docs/verification.md).

The pipeline hands each batch's new EVENTs to the :class:`VerificationStage` before
the commit and waits for their verdicts a bounded time; the stage runs the model of
each event's model id (:func:`load_registry`) on one worker thread, so inference
never runs on the event loop. The verdict is stored with the event and joins its
payload. Importing this package needs numpy and a runtime (the ``verify`` extra):
only a configuration that enables verification imports it.
"""

from gateway.verify.registry import ModelEntry, load_registry, model_id_of
from gateway.verify.stage import VerificationStage
from gateway.verify.verdict import Policy, Unverified, Verdict, judge

__all__ = [
    "ModelEntry",
    "Policy",
    "Unverified",
    "VerificationStage",
    "Verdict",
    "judge",
    "load_registry",
    "model_id_of",
]
