"""The boot stage (gateway/boots.py): which boot id of a node is current.

Pure decisions on real decoded messages; the end-to-end cases (the gateway, a real
Mosquitto, nodes on a pseudo-terminal) are in test_node_lies.py.
"""

from __future__ import annotations

import logging
from collections import Counter

from gateway.boots import MAX_CANDIDATES, BootStage
from gateway.config import NodeSection
from gateway.logs import BadInput, RateLimitedLog
from gateway.model import Inbound
from gateway.nodes import LiveNode
from gateway.outbox import NodeState
from gateway.protocol import Event, Heartbeat, decode, encode

N = 0xAB
KEY = bytes(range(32))


def _msg(boot: int, seq: int, uptime_ms: int, *, key: bytes | None = None) -> Inbound:
    body = Event(0x1A2B3C4D, 1, 50000, 4000) if seq else Heartbeat(1, 2, 3, 0, 1, 0)
    raw = encode(body, node_id=N, boot_id=boot, seq=seq, uptime_ms=uptime_ms, key=key)
    return Inbound(decode(raw), "serial", "/dev/test", 0, None)


def _stage() -> tuple[BootStage, Counter[str]]:
    c: Counter[str] = Counter()
    return BootStage(BadInput(c, RateLimitedLog(logging.getLogger("test"), 0))), c


def _node(key: bytes | None = None) -> LiveNode:
    conf = NodeSection(key=key.hex()) if key else None
    return LiveNode(N, NodeState(), conf, 10.0)


def _through(stage: BootStage, node: LiveNode, *items: Inbound) -> list[tuple[int, int]]:
    """(boot, seq) of every message that went on, in order."""
    out = []
    for item in items:
        out += [(m.message.header.boot_id, m.message.header.seq) for m in stage.check(node, item)]
    return out


def test_the_first_boot_heard_is_taken_and_confirmed_by_a_second_message() -> None:
    stage, _ = _stage()
    node = _node()
    assert _through(stage, node, _msg(7, 1, 100)) == [(7, 1)]
    assert not node.state.seq.confirmed
    _through(stage, node, _msg(7, 1, 100))  # a resend (same uptime) confirms nothing
    assert not node.state.seq.confirmed
    _through(stage, node, _msg(7, 2, 200))
    assert node.state.seq.confirmed


def test_one_frame_of_another_boot_is_held_and_the_current_boot_goes_on() -> None:
    stage, c = _stage()
    node = _node()
    _through(stage, node, _msg(7, 1, 100), _msg(7, 2, 200))
    assert _through(stage, node, _msg(0xFFFFFFFF, 3, 300)) == []
    assert c["boot_unconfirmed"] == 1
    assert _through(stage, node, _msg(7, 3, 300), _msg(7, 4, 400)) == [(7, 3), (7, 4)]
    assert node.state.seq.boot_id == 7


def test_a_newer_boot_confirmed_by_a_second_message_releases_what_was_held() -> None:
    stage, c = _stage()
    node = _node()
    _through(stage, node, _msg(7, 1, 100), _msg(7, 2, 200))
    assert _through(stage, node, _msg(8, 0, 50)) == []
    assert _through(stage, node, _msg(8, 1, 80)) == [(8, 0), (8, 1)]
    assert node.state.seq.boot_id == 8
    assert node.state.seq.epoch == 0
    assert c["boots_adopted"] == 1


def test_a_keyed_node_s_signed_newer_boot_is_taken_at_once() -> None:
    stage, _ = _stage()
    node = _node(KEY)
    _through(stage, node, _msg(7, 1, 100, key=KEY), _msg(7, 2, 200, key=KEY))
    assert _through(stage, node, _msg(8, 1, 80, key=KEY)) == [(8, 1)]
    assert node.state.seq.boot_id == 8


def test_a_lower_boot_with_a_fresh_start_is_a_reset_in_a_new_epoch() -> None:
    stage, c = _stage()
    node = _node()
    _through(stage, node, _msg(9, 1, 5_000_000), _msg(9, 2, 5_000_100))
    assert _through(stage, node, _msg(0, 0, 120)) == []
    assert _through(stage, node, _msg(0, 1, 400)) == [(0, 0), (0, 1)]
    assert (node.state.seq.boot_id, node.state.seq.epoch) == (0, 1)
    assert c["boot_resets"] == 1


def test_a_lower_boot_without_a_fresh_start_stays_refused() -> None:
    stage, c = _stage()
    node = _node()
    _through(stage, node, _msg(9, 1, 100), _msg(9, 2, 200))
    late = [_msg(3, s, 4_000_000 + s) for s in range(1, 6)]
    assert _through(stage, node, *late) == []
    assert c["rejected_stale"] == 5
    assert node.state.seq.boot_id == 9


def test_a_bogus_first_frame_gives_way_to_the_boot_that_keeps_arriving() -> None:
    """The first frame ever heard claimed boot 0xFFFFFFFF; the node's real boot is lower
    and long running (no fresh start), but the bogus one was never confirmed."""
    stage, _ = _stage()
    node = _node()
    _through(stage, node, _msg(0xFFFFFFFF, 1, 9_000_000))
    assert _through(stage, node, _msg(4, 10, 7_000_000)) == []
    assert _through(stage, node, _msg(4, 11, 7_000_500)) == [(4, 10), (4, 11)]
    assert node.state.seq.boot_id == 4


def test_boots_seen_once_do_not_crowd_out_the_one_being_confirmed() -> None:
    stage, c = _stage()
    node = _node()
    _through(stage, node, _msg(7, 1, 100), _msg(7, 2, 200))
    _through(stage, node, _msg(8, 0, 10))  # the real reboot's first message
    for bogus in range(100, 100 + MAX_CANDIDATES - 1):
        _through(stage, node, _msg(bogus, 1, 1))
    assert _through(stage, node, _msg(8, 1, 20)) == [(8, 0), (8, 1)]
    flood = [_msg(b, 1, 1) for b in range(200, 200 + 3 * MAX_CANDIDATES)]
    _through(stage, node, *flood)
    assert len(node.candidates) <= MAX_CANDIDATES
    assert c["boot_candidates_dropped"] > 0


def test_a_keyed_node_s_lower_boot_waits_for_the_operator_even_when_fresh() -> None:
    """Its tag proves who sent it, not when: recorded traffic played back looks the same."""
    stage, c = _stage()
    node = _node(KEY)
    _through(stage, node, _msg(9, 1, 100, key=KEY), _msg(9, 2, 200, key=KEY))
    replay = [_msg(4, s, 50 * s, key=KEY) for s in range(1, 5)]
    assert _through(stage, node, *replay) == []
    assert c["rejected_stale"] == 4
    assert node.state.seq.boot_id == 9
