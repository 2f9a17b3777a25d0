"""Verification of node decisions by a model run on the gateway (a later issue).

The pipeline calls a :data:`VerifyHook` for each new EVENT before it is
stored; until verification is configured there is no hook and nothing runs.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.protocol import Message

VerifyHook = Callable[[Message], None]
