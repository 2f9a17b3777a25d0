"""Wall-clock time of a node's moments, from its uptime: the pipeline's time stage.

A node has no wall clock. Per (node, boot) the gateway keeps an offset, wall
clock minus uptime, estimated as the least ``arrival - uptime`` seen: the sample
with the least transmission delay. Each sample is checked against the gateway's
own clock first, so that one frame lying about its uptime cannot move the
estimate every later record of that node is stamped with (docs/protocol.md,
section 2).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from gateway.outbox import NodeState

# A node's uptime may run ahead of the gateway's clock by this share of the time
# between samples (2 %: internal RC oscillators, far beyond any crystal), plus jitter.
MAX_DRIFT: Final = 0.02
JITTER_MS: Final = 1000
# A fresh message (a heartbeat) that seems delayed by more than this means the offset
# is wrong, not the message: it came from an earlier frame whose uptime was too high.
REANCHOR_MS: Final = 60_000
_HALF_WRAP: Final = 1 << 31


class Sample(StrEnum):
    USED = "used"
    AHEAD = "uptime_ahead"  # uptime ran ahead of the gateway's clock: refused, stamped on arrival
    REANCHORED = "offset_reanchored"  # the estimate was wrong and starts again from here


def stamp(
    st: NodeState, boot_id: int, uptime_ms: int, arrival_ms: int, *, fresh: bool
) -> tuple[int, Sample]:
    """Wall-clock ms of a node moment, and what became of its sample.

    ``fresh``: the message is sent when made, never resent (a heartbeat).
    Uptime wraps every 49.7 days; it is unwrapped against the known offset.
    """
    # the stored offset is the boot's the sequence state names (offset_boot is not stored)
    offset_boot = st.seq.boot_id if st.offset_boot is None else st.offset_boot
    offset = st.offset_ms if boot_id == offset_boot else None
    if offset is None:
        st.offset_ms, st.offset_at_ms, st.offset_boot = arrival_ms - uptime_ms, arrival_ms, boot_id
        return arrival_ms, Sample.USED
    wraps = max(0, (arrival_ms - offset - uptime_ms + _HALF_WRAP) >> 32)
    unwrapped = uptime_ms + (wraps << 32)
    candidate = arrival_ms - unwrapped
    at = st.offset_at_ms
    allowance = REANCHOR_MS if at is None else JITTER_MS + MAX_DRIFT * max(0, arrival_ms - at)
    if candidate < offset - allowance:
        return arrival_ms, Sample.AHEAD
    result = Sample.USED
    if candidate < offset:
        offset = candidate
    elif fresh and candidate - offset > REANCHOR_MS:
        offset, result = candidate, Sample.REANCHORED
    if offset == candidate:
        st.offset_ms, st.offset_at_ms = offset, arrival_ms
    return offset + unwrapped, result
