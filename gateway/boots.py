"""Which boot of a node is current: the pipeline's boot stage (docs/protocol.md 2.1).

A node's boot id comes from its own flash, so one frame can carry any value:
a firmware bug, erased flash (0xFFFFFFFF), a wrong board on the port. Taking
it at its word would make the node's real boot "stale" and lock its events
out for good. So a boot id other than the current one is a candidate until
it is confirmed:

- a newer boot, by a message with a valid tag from a keyed node, or by
  CONFIRMATIONS messages with distinct uptimes;
- a lower boot (a boot counter that was reset) of a node without a key, by
  CONFIRMATIONS messages one of which shows a fresh start (uptime under
  FRESH_UPTIME_MS): it starts a new epoch, so dedup keys never repeat. Without
  a fresh start it stays refused, and the operator's ``node forget`` is the way
  out. A keyed node's lower boot is always refused until then: its tag proves
  who sent a message, not when, so it may be recorded traffic played back;
- any lower boot of a node without a key, by CONFIRMATIONS messages while the
  current boot itself is not confirmed (a node whose first frame was bogus).

Messages of a candidate are held, not dropped: when it is adopted they go on
in order, before the message that confirmed it. Nothing of them is
acknowledged meanwhile, so a node that can receive resends them anyway.
The current boot goes on undisturbed while candidates wait: a boot seen once
and never again shadows nothing.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass, field
from typing import Final

from gateway.logs import BadInput
from gateway.model import Inbound, node_hex
from gateway.nodes import LiveNode
from gateway.protocol.sequence import CONFIRMATIONS

log = logging.getLogger(__name__)

FRESH_UPTIME_MS: Final = 10 * 60_000
MAX_CANDIDATES: Final = 4  # per node; the one heard longest ago makes room


@dataclass(slots=True)
class Candidate:
    """A boot id heard from a node and not (yet) its current one."""

    uptimes: set[int] = field(default_factory=set)
    fresh: bool = False
    held: list[Inbound] = field(default_factory=list)
    heard: int = 0  # order of its last message, to find the one heard longest ago


class BootStage:
    def __init__(self, bad_input: BadInput) -> None:
        self._bad = bad_input
        self._c = bad_input.counters
        self._ticks = itertools.count(1)

    def check(self, node: LiveNode, item: Inbound) -> list[Inbound]:
        """The messages that go on: ``[item]`` from the current boot, ``[]`` while its
        boot is a candidate, or the held messages and ``item`` when it adopts one."""
        h = item.message.header
        seq = node.state.seq
        if seq.boot_messages == 0:
            seq.adopt(h.boot_id, 1)  # the first boot heard from a node: nothing to protect
            node.confirming = {h.uptime_ms}
            return [item]
        if h.boot_id == seq.boot_id:
            if not seq.confirmed and h.uptime_ms not in node.confirming:
                node.confirming.add(h.uptime_ms)
                seq.boot_messages = len(node.confirming)
            return [item]
        cand = self._candidate(node, h.boot_id)
        cand.uptimes.add(h.uptime_ms)
        cand.fresh = cand.fresh or h.uptime_ms < FRESH_UPTIME_MS
        cand.heard = next(self._ticks)
        newer = h.boot_id > seq.boot_id
        confirmed = len(cand.uptimes) >= CONFIRMATIONS
        signed = node.key is not None  # admission checked the tag
        if newer and (signed or confirmed):
            return self._adopt(node, h.boot_id, cand, item)
        # a keyed node's tag proves who sent a message, not when: a lower boot of a keyed
        # node may be recorded traffic played back, so only the operator lets it in
        if not newer and not signed and confirmed and (cand.fresh or not seq.confirmed):
            return self._adopt(node, h.boot_id, cand, item)
        if not newer and (signed or (not cand.fresh and seq.confirmed)):
            self._bad(
                "rejected_stale",
                f"stale:{h.node_id}",
                "dropped a %s of node %s from boot %d, lower than its current boot %d%s: "
                "if its boot counter was reset, run 'tinyml-gateway node forget %s'",
                h.type.name,
                node_hex(h.node_id),
                h.boot_id,
                seq.boot_id,
                " (a keyed node: it may be a replay)" if signed else ", with no fresh start",
                node_hex(h.node_id),
            )
            return []
        if len(cand.held) < CONFIRMATIONS - 1:
            cand.held.append(item)
        self._c["boot_unconfirmed"] += 1
        return []

    def _candidate(self, node: LiveNode, boot_id: int) -> Candidate:
        cand = node.candidates.get(boot_id)
        if cand is None:
            if len(node.candidates) >= MAX_CANDIDATES:
                oldest = min(node.candidates, key=lambda b: node.candidates[b].heard)
                del node.candidates[oldest]
                self._c["boot_candidates_dropped"] += 1
            cand = node.candidates[boot_id] = Candidate()
        return cand

    def _adopt(self, node: LiveNode, boot_id: int, cand: Candidate, item: Inbound) -> list[Inbound]:
        seq = node.state.seq
        was, epoch = seq.boot_id, seq.epoch
        seq.adopt(boot_id, len(cand.uptimes))
        node.confirming = set(cand.uptimes)
        node.candidates.clear()
        node.info_asked = False  # its INFO may have been among the messages not held
        if seq.epoch != epoch:
            self._bad(
                "boot_resets",
                f"reset:{node.node_id}",
                "node %s went back from boot %d to boot %d and shows a fresh start: taken "
                "as a reset boot counter (reflashed or erased storage); its events go on "
                "with dedup epoch %d",
                node_hex(node.node_id),
                was,
                boot_id,
                seq.epoch,
            )
        else:
            self._c["boots_adopted"] += 1
            log.info("node %s: boot %d confirmed (was %d)", node_hex(node.node_id), boot_id, was)
        return [*cand.held, item]
