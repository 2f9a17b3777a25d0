"""Sequence state: duplicates, replays, the cumulative ACK never covering a missing event."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocol import SequenceState, Verdict
from gateway.protocol.sequence import MAX_ABOVE, newer_u32

settings.register_profile("ci", deadline=None, max_examples=300)
settings.load_profile("ci")


def test_gap_holds_the_ack_until_filled() -> None:
    s = SequenceState()
    for seq in (1, 2, 4, 5):
        assert s.classify(7, seq) == Verdict.NEW
        s.record(7, seq)
    assert s.ack == (7, 2)
    assert s.classify(7, 4) == Verdict.DUPLICATE
    s.record(7, 3)
    assert s.ack == (7, 5)
    assert s.classify(7, 1) == Verdict.DUPLICATE


def test_new_boot_resets_and_old_boot_is_stale() -> None:
    s = SequenceState()
    s.record(1, 1)
    s.record(2, 1)
    assert s.ack == (2, 1)
    assert s.classify(1, 2) == Verdict.STALE
    assert s.record(1, 2) == 0 and s.ack == (2, 1)


def test_retx_floor_gives_up_only_what_is_missing() -> None:
    s = SequenceState()
    for seq in (1, 2, 5, 7):
        s.record(3, seq)
    assert s.skip_below(3, 6) == 2  # 3 and 4 are gone; 5 is held
    assert s.ack == (3, 5)
    assert s.skip_below(3, 2) == 0
    s.record(3, 6)
    assert s.ack == (3, 7)


def test_a_gap_open_too_long_is_given_up_and_counted() -> None:
    s = SequenceState()
    lost = sum(s.record(1, seq) for seq in range(2, MAX_ABOVE + 3))
    assert lost == 1 and s.ack == (1, MAX_ABOVE + 2) and not s.above


def test_control_messages_must_move_forward_across_the_uptime_wrap() -> None:
    s = SequenceState()
    assert s.accept_control(1, 2, 0xFFFFFF00) == Verdict.NEW
    assert s.accept_control(1, 2, 0xFFFFFF00) == Verdict.DUPLICATE
    assert s.accept_control(1, 2, 0x10) == Verdict.NEW  # wrapped
    assert s.accept_control(1, 2, 0xFFFFFF00) == Verdict.DUPLICATE
    assert s.accept_control(0, 2, 0x20) == Verdict.STALE
    assert newer_u32(1, 0) and not newer_u32(0, 1)


@given(st.permutations(list(range(1, 60))), st.sets(st.integers(1, 59)))
def test_ack_is_exactly_the_contiguous_prefix(order: list[int], missing: set[int]) -> None:
    s = SequenceState()
    stored = set()
    for seq in order:
        if seq in missing:
            continue
        assert s.classify(9, seq) == Verdict.NEW
        s.record(9, seq)
        stored.add(seq)
        assert s.classify(9, seq) == Verdict.DUPLICATE
        boot, acked = s.ack
        assert boot == 9
        assert all(k in stored for k in range(1, acked + 1))
        assert acked + 1 not in stored
