"""Sequence state: duplicates, replays, the cumulative ACK never covering a missing event."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocol import Arrival, SequenceState
from gateway.protocol.sequence import RECENT_REPEATS, WINDOW, newer_u32

settings.register_profile("ci", deadline=None, max_examples=300)
settings.load_profile("ci")


def test_gap_holds_the_ack_until_filled() -> None:
    s = SequenceState()
    for seq in (1, 2, 4, 5):
        assert s.classify(7, seq) == Arrival.NEW
        s.record(7, seq)
    assert s.ack == (7, 2)
    assert s.classify(7, 4) == Arrival.DUPLICATE
    s.record(7, 3)
    assert s.ack == (7, 5)
    assert s.classify(7, 1) == Arrival.DUPLICATE


def test_new_boot_resets_and_old_boot_is_stale() -> None:
    s = SequenceState()
    s.record(1, 1)
    s.record(2, 1)
    assert s.ack == (2, 1)
    assert s.classify(1, 2) == Arrival.STALE
    s.record(1, 2)
    assert s.ack == (2, 1)


def test_retx_floor_gives_up_only_what_is_missing_once_confirmed() -> None:
    s = SequenceState()
    for seq in (1, 2, 5, 7):
        s.record(3, seq)
    assert s.skip_below(3, 6, 7) == 0  # the first claim is only noted
    assert s.ack == (3, 2)
    assert s.skip_below(3, 6, 7) == 2  # confirmed: 3 and 4 are gone; 5 is held
    assert s.ack == (3, 5)
    assert s.skip_below(3, 2, 7) == 0
    s.record(3, 6)
    assert s.ack == (3, 7)


def test_an_impossible_floor_is_refused_and_moves_nothing() -> None:
    s = SequenceState()
    for seq in range(1, 11):
        s.record(1, seq)
    s.skip_below(1, 11, 10)  # honest: empty ring, floor = last seq + 1
    assert s.skip_below(1, 0xFFFFFFFF, 10) is None
    assert s.skip_below(1, 12, 10) is None
    assert s.ack == (1, 10)
    assert s.classify(1, 11) == Arrival.NEW


def test_one_bogus_floor_is_never_applied() -> None:
    """Consistent on its face (floor = seq + 1), but the next honest heartbeat says less."""
    s = SequenceState()
    for seq in range(1, 21):
        s.record(1, seq)
    s.skip_below(1, 21, 20)
    assert s.skip_below(1, 0xFFFFFFFF, 0xFFFFFFFE) == 0  # min(21, 2^32 - 1): nothing new
    assert s.skip_below(1, 21, 30) == 0  # honest: the node holds 21..30, not yet stored
    assert s.ack == (1, 20)
    for seq in range(21, 31):
        assert s.classify(1, seq) == Arrival.NEW
        s.record(1, seq)
    assert s.ack == (1, 30)


@given(
    st.sets(st.integers(1, 200), max_size=80),
    st.integers(1, 201),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.booleans(),
)
def test_one_bogus_heartbeat_never_acknowledges_an_event_the_node_still_holds(
    stored: set[int], true_floor: int, floor: int, claimed: int, bogus_first: bool
) -> None:
    """The node holds every event from ``true_floor`` up to 200; one honest heartbeat
    says so, one bogus heartbeat says anything, in either order."""
    s = SequenceState(boot_id=5)
    for seq in sorted(stored):
        s.record(5, seq)
    honest = (true_floor, 200)
    for f, c in [(floor, claimed), honest] if bogus_first else [honest, (floor, claimed)]:
        s.skip_below(5, f, c)
    _, acked = s.ack
    assert all(seq in stored for seq in range(true_floor, acked + 1))


def test_a_gap_is_never_given_up_for_the_events_held_above_it() -> None:
    """Seq 1 is missing; far more than the window arrive above it. Nothing is given up,
    the ACK stays below the gap, what lies beyond the window is refused (the node keeps
    it), and memory stays bounded; the node's resend of seq 1 then closes the gap."""
    s = SequenceState()
    refused = []
    for seq in range(2, 3 * WINDOW):
        arrival = s.classify(1, seq)
        if arrival == Arrival.AHEAD:
            refused.append(seq)
            continue
        assert arrival == Arrival.NEW
        s.record(1, seq)
        assert s.ack == (1, 0)
    assert len(s.above) <= 2 * WINDOW
    assert refused and refused[0] > WINDOW
    assert s.classify(1, 1) == Arrival.NEW  # the resend of the missing event
    s.record(1, 1)
    _, acked = s.ack
    assert acked == refused[0] - 1  # every stored event, and none the node still must send
    assert all(s.classify(1, seq) == Arrival.NEW for seq in refused[: WINDOW // 2])


def test_only_a_confirmed_floor_gives_a_held_gap_up() -> None:
    s = SequenceState()
    for seq in range(2, WINDOW + 2):
        s.record(1, seq)
    assert s.skip_below(1, 2, WINDOW + 1) == 0
    assert s.ack == (1, 0)
    assert s.skip_below(1, 2, WINDOW + 5) == 1  # confirmed: only seq 1 is gone
    assert s.ack == (1, WINDOW + 1) and not s.above


@given(
    st.lists(st.integers(1, 3 * WINDOW), max_size=400),
    st.sets(st.integers(1, 40), min_size=1, max_size=5),
)
def test_the_held_set_is_bounded_and_the_ack_never_passes_a_missing_event(
    arrivals: list[int], missing: set[int]
) -> None:
    s = SequenceState()
    stored: set[int] = set()
    for seq in [*range(1, 2 * WINDOW), *arrivals]:
        if seq in missing:
            continue
        if s.classify(4, seq) == Arrival.NEW:
            s.record(4, seq)
            stored.add(seq)
    _, acked = s.ack
    assert acked < min(missing)
    assert all(k in stored for k in range(1, acked + 1))
    assert len(s.above) <= 2 * WINDOW


def test_a_keyed_nodes_control_messages_must_move_forward_across_the_uptime_wrap() -> None:
    s = SequenceState()
    assert s.accept_control(1, 2, 0xFFFFFF00, authenticated=True) == Arrival.NEW
    assert s.accept_control(1, 2, 0xFFFFFF00, authenticated=True) == Arrival.DUPLICATE
    assert s.accept_control(1, 2, 0x10, authenticated=True) == Arrival.NEW  # wrapped
    assert s.accept_control(1, 2, 0xFFFFFF00, authenticated=True) == Arrival.DUPLICATE
    assert s.accept_control(0, 2, 0x20, authenticated=True) == Arrival.STALE
    assert newer_u32(1, 0) and not newer_u32(0, 1)


def test_one_unkeyed_message_far_ahead_in_uptime_shuts_out_nothing() -> None:
    """The general rule: an unkeyed node's frames can be forged, so no single one of them
    may decide which of its later frames are refused; exact repeats are still dropped."""
    s = SequenceState()
    assert s.accept_control(1, 2, 5_000, authenticated=False) == Arrival.NEW
    assert s.accept_control(1, 2, 10**9, authenticated=False) == Arrival.NEW  # the spoof
    for uptime in range(15_000, 15_000 + 60_000 * 20, 60_000):  # the honest heartbeats
        assert s.accept_control(1, 2, uptime, authenticated=False) == Arrival.NEW
        assert s.accept_control(1, 2, uptime, authenticated=False) == Arrival.DUPLICATE
    assert s.control_uptime == {}  # nothing that orders later messages was stored
    assert len(s.recent[2]) == RECENT_REPEATS


@given(st.permutations(list(range(1, 60))), st.sets(st.integers(1, 59)))
def test_ack_is_exactly_the_contiguous_prefix(order: list[int], missing: set[int]) -> None:
    s = SequenceState()
    stored = set()
    for seq in order:
        if seq in missing:
            continue
        assert s.classify(9, seq) == Arrival.NEW
        s.record(9, seq)
        stored.add(seq)
        assert s.classify(9, seq) == Arrival.DUPLICATE
        boot, acked = s.ack
        assert boot == 9
        assert all(k in stored for k in range(1, acked + 1))
        assert acked + 1 not in stored
