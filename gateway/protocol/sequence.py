"""Per-node sequence state: duplicate and replay detection, and the cumulative ACK.

Pure logic, persisted by the outbox so it survives restarts. EVENTs are
numbered 1, 2, ... within a boot; ``contiguous`` is the highest seq such that
every EVENT up to it is stored (or was declared unrecoverable by the node's
``retx_floor``). That value is what the gateway acknowledges: the node frees
its retransmit ring up to it, so it must never cover an event not stored.

The rule for every value here that makes the gateway refuse a later message
(``boot_id``, ``contiguous`` and the seqs held above it, the control uptimes):
it moves only on evidence a forger cannot produce alone, so that one frame can
never shut out the honest frames after it. That evidence is an authenticated
message, or two messages that agree (a boot confirmed by two uptimes, a
retx_floor confirmed by the next heartbeat); a node without a key gets
duplicate suppression of exact repeats only, and no ordering rule at all.
Memory is bounded by refusing what lies too far ahead (the node keeps it and
resends it), never by giving up a gap the node may still fill.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

# Messages with distinct uptimes that confirm a boot: a boot id seen in fewer is not
# adopted (one bogus frame must not lock a node's real boot out).
CONFIRMATIONS: Final = 2
# How far above an open gap EVENTs are stored: one more than WINDOW above the
# acknowledged seq, once WINDOW are already held above the gap, is refused
# (``Arrival.AHEAD``: neither stored nor acknowledged, so the node keeps it in its
# ring and resends it once the gap is filled). The set of seqs held above a gap
# therefore never exceeds 2 x WINDOW, and a gap is never given up for its size:
# only the node's own confirmed retx_floor gives it up.
WINDOW: Final = 4096
# Uptimes of an unkeyed node's recent control messages remembered per type, to
# drop exact repeats (a frame a link delivered twice).
RECENT_REPEATS: Final = 8
_HALF: Final = 1 << 31


class Arrival(StrEnum):
    """What a message is to a node's sequence state (not a verification verdict)."""

    NEW = "new"
    DUPLICATE = "duplicate"  # seen before: drop, but acknowledge again
    STALE = "stale"  # from an earlier boot than the node's current one
    AHEAD = "ahead"  # too far above an open gap to hold: the node keeps it and resends it


def newer_u32(a: int, b: int) -> bool:
    """True when ``a`` follows ``b`` in 32-bit serial-number order (RFC 1982)."""
    return 0 < (a - b) % (1 << 32) < _HALF


@dataclass(slots=True)
class SequenceState:
    boot_id: int = 0
    contiguous: int = 0
    above: set[int] = field(default_factory=set)
    # last accepted uptime of each non-EVENT message type of a keyed node (replay check)
    control_uptime: dict[int, int] = field(default_factory=dict)
    # the last uptimes of each control type of an unkeyed node: exact repeats are dropped;
    # not stored (a repeat across a restart is kept once more, which is harmless)
    recent: dict[int, deque[int]] = field(default_factory=dict)
    # the retx_floor of the node's last heartbeat this boot; not stored, so after a
    # restart the first heartbeat only sets it (see skip_below)
    last_floor: int | None = None
    # how many messages of boot_id were heard, up to CONFIRMATIONS (then the boot is
    # confirmed); 0: nothing heard from the node yet
    boot_messages: int = 0
    # incremented whenever the gateway accepts a lower boot id (a boot-counter reset) or
    # forgets the node: it is part of the dedup key, so keys never repeat
    epoch: int = 0

    def classify(self, boot_id: int, seq: int) -> Arrival:
        if boot_id < self.boot_id:
            return Arrival.STALE
        if boot_id > self.boot_id:
            return Arrival.NEW
        if seq <= self.contiguous or seq in self.above:
            return Arrival.DUPLICATE
        if seq - self.contiguous > WINDOW and len(self.above) >= WINDOW:
            return Arrival.AHEAD
        return Arrival.NEW

    def record(self, boot_id: int, seq: int) -> None:
        """Marks one EVENT stored (one that ``classify`` called NEW)."""
        if boot_id < self.boot_id:
            return
        if boot_id > self.boot_id:
            self._new_boot(boot_id)
        if seq <= self.contiguous:
            return
        self.above.add(seq)
        self._advance()

    def give_up_below(self, seq: int) -> int:
        """Stops waiting for EVENTs below ``seq``; returns how many that gives up."""
        return self._skip_to(seq - 1)

    def skip_below(self, boot_id: int, floor: int, claimed_seq: int) -> int | None:
        """A heartbeat says the node will never resend EVENTs below ``floor``.

        Returns how many events that gives up, or None when the claim is
        impossible and is ignored: an honest node's floor is at most its last
        EVENT's seq (``claimed_seq``, the heartbeat's header) + 1. A floor takes
        effect only once the next heartbeat confirms it (the lower of the last
        two is applied), because acknowledging up to it makes the node free its
        ring: one bogus heartbeat must not make the gateway acknowledge, and so
        lose, every later event as a duplicate. An honest node's floor never goes
        down, so this only delays giving up a real gap by one heartbeat period.
        """
        if boot_id < self.boot_id:
            return 0
        if floor > claimed_seq + 1:
            return None
        if boot_id > self.boot_id:
            self._new_boot(boot_id)
        previous, self.last_floor = self.last_floor, floor
        if previous is None:
            return 0
        return self._skip_to(min(previous, floor) - 1)

    def accept_control(
        self, boot_id: int, msg_type: int, uptime_ms: int, *, authenticated: bool
    ) -> Arrival:
        """Replay check for non-EVENT messages.

        An authenticated message's uptime must move forward within its type: only the
        node can sign one, so the last accepted uptime is the node's own. An unkeyed
        node's message is refused only as an exact repeat of one of the last
        ``RECENT_REPEATS`` of its type: anyone can send its frames, so an ordering rule
        would let one frame with a far-ahead uptime silence every honest one after it.
        """
        if boot_id < self.boot_id:
            return Arrival.STALE
        if boot_id > self.boot_id:
            self._new_boot(boot_id)
        if not authenticated:
            recent = self.recent.setdefault(msg_type, deque(maxlen=RECENT_REPEATS))
            if uptime_ms in recent:
                return Arrival.DUPLICATE
            recent.append(uptime_ms)
            return Arrival.NEW
        last = self.control_uptime.get(msg_type)
        if last is not None and not newer_u32(uptime_ms, last):
            return Arrival.DUPLICATE
        self.control_uptime[msg_type] = uptime_ms
        return Arrival.NEW

    @property
    def confirmed(self) -> bool:
        return self.boot_messages >= CONFIRMATIONS

    def adopt(self, boot_id: int, messages: int) -> None:
        """Makes ``boot_id`` the node's current boot, heard in ``messages`` messages; a
        lower boot id than the current one is a reset and starts a new epoch."""
        if self.boot_messages and boot_id < self.boot_id:
            self.epoch += 1
        self._new_boot(boot_id)
        self.boot_messages = min(messages, CONFIRMATIONS)

    @property
    def ack(self) -> tuple[int, int]:
        return self.boot_id, self.contiguous

    def _new_boot(self, boot_id: int) -> None:
        self.boot_id = boot_id
        self.contiguous = 0
        self.above.clear()
        self.control_uptime.clear()
        self.recent.clear()
        self.last_floor = None

    def _skip_to(self, target: int) -> int:
        if target <= self.contiguous:
            return 0
        held = {s for s in self.above if s <= target}
        lost = target - self.contiguous - len(held)
        self.above -= held
        self.contiguous = target
        self._advance()
        return lost

    def _advance(self) -> None:
        nxt = self.contiguous + 1
        while nxt in self.above:
            self.above.remove(nxt)
            nxt += 1
        self.contiguous = nxt - 1
