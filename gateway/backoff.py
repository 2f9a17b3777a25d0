"""Reconnect delays: exponential with full jitter and a cap (as aiomqtt's examples do)."""

from __future__ import annotations

import random


def backoff_s(attempt: int, cap_s: float) -> float:
    """Delay before reconnect ``attempt`` (0-based): uniform in [0, min(cap, 1.5**attempt)]."""
    return random.uniform(0, min(cap_s, 1.5 ** min(attempt, 20)))  # noqa: S311 (jitter, not crypto)
