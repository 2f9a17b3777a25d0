"""Per-node sequence state: duplicate and replay detection, and the cumulative ACK.

Pure logic, persisted by the outbox so it survives restarts. EVENTs are
numbered 1, 2, ... within a boot; ``contiguous`` is the highest seq such that
every EVENT up to it is stored (or was declared unrecoverable by the node's
``retx_floor``). That value is what the gateway acknowledges: the node frees
its retransmit ring up to it, so it must never cover an event not stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

# Messages with distinct uptimes that confirm a boot: a boot id seen in fewer is not
# adopted (one bogus frame must not lock a node's real boot out).
CONFIRMATIONS: Final = 2
# Stored EVENTs above an open gap that are remembered individually. A gap
# that stays open this long is given up (and counted): no node ring is larger.
MAX_ABOVE: Final = 4096
_HALF: Final = 1 << 31


class Arrival(StrEnum):
    """What a message is to a node's sequence state (not a verification verdict)."""

    NEW = "new"
    DUPLICATE = "duplicate"  # seen before: drop, but acknowledge again
    STALE = "stale"  # from an earlier boot than the node's current one


def newer_u32(a: int, b: int) -> bool:
    """True when ``a`` follows ``b`` in 32-bit serial-number order (RFC 1982)."""
    return 0 < (a - b) % (1 << 32) < _HALF


@dataclass(slots=True)
class SequenceState:
    boot_id: int = 0
    contiguous: int = 0
    above: set[int] = field(default_factory=set)
    # last accepted uptime of each non-EVENT message type, for replay checks
    control_uptime: dict[int, int] = field(default_factory=dict)
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
        return Arrival.NEW

    def record(self, boot_id: int, seq: int) -> int:
        """Marks one EVENT stored. Returns how many events a forced skip gave up."""
        if boot_id < self.boot_id:
            return 0
        if boot_id > self.boot_id:
            self._new_boot(boot_id)
        if seq <= self.contiguous:
            return 0
        self.above.add(seq)
        self._advance()
        if len(self.above) > MAX_ABOVE:
            return self._skip_to(min(self.above) - 1)
        return 0

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

    def accept_control(self, boot_id: int, msg_type: int, uptime_ms: int) -> Arrival:
        """Replay check for non-EVENT messages: their uptime must move forward."""
        if boot_id < self.boot_id:
            return Arrival.STALE
        if boot_id > self.boot_id:
            self._new_boot(boot_id)
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
