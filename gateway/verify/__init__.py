"""Verification of node decisions by a model run on the gateway: the stage's place.

The pipeline offers every EVENT it has committed to a :class:`VerificationStage`
(when one is configured). The stage has its own bounded queue and task and runs
the model on its own thread, so inference never runs on the event loop and
never delays a commit or an ACK; when it falls behind, events go on unverified
and are counted. What becomes of a result is its ``on_result`` callback's
business (docs/architecture.md, "The verification stage").
"""

from gateway.verify.stage import VerificationStage, Verify

__all__ = ["VerificationStage", "Verify"]
