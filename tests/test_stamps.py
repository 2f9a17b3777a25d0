"""The time stage: a node's clock offset, and one frame that lies about its uptime."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.outbox import NodeState
from gateway.protocol import SequenceState
from gateway.stamps import REANCHOR_MS, Sample, stamp

settings.register_profile("ci", deadline=None, max_examples=300)
settings.load_profile("ci")

T0 = 1_796_000_000_000  # gateway wall clock, ms
BOOT = 3


def state() -> NodeState:
    return NodeState(SequenceState(boot_id=BOOT))


@given(st.floats(-0.015, 0.015), st.lists(st.integers(0, 400), min_size=5, max_size=60))
def test_an_honest_node_with_a_drifting_clock_is_stamped_near_its_arrival(
    drift: float, delays: list[int]
) -> None:
    s = state()
    for i, delay in enumerate(delays):
        real = i * 10_000  # a message every 10 s of gateway time
        uptime = 5_000 + int(real * (1 + drift))
        ts, sample = stamp(s, BOOT, uptime, T0 + real + delay, fresh=i % 2 == 0)
        assert sample in (Sample.USED, Sample.REANCHORED)
        assert abs(ts - (T0 + real)) <= 1000 + abs(drift) * real + 400


def test_one_event_far_ahead_is_refused_and_later_records_keep_their_time() -> None:
    s = state()
    assert stamp(s, BOOT, 1_000, T0, fresh=True) == (T0, Sample.USED)
    ts, sample = stamp(s, BOOT, 1_000_000_000, T0 + 1_000, fresh=False)
    assert (ts, sample) == (T0 + 1_000, Sample.AHEAD)
    assert stamp(s, BOOT, 3_000, T0 + 2_010, fresh=False) == (T0 + 2_000, Sample.USED)


def test_a_wrong_first_offset_is_undone_by_the_next_heartbeat() -> None:
    s = state()
    stamp(s, BOOT, 1_000_000_000, T0, fresh=False)  # the first sample of the boot lies
    ts, sample = stamp(s, BOOT, 2_000, T0 + 1_000, fresh=True)
    assert (ts, sample) == (T0 + 1_000, Sample.REANCHORED)
    assert stamp(s, BOOT, 3_000, T0 + 2_000, fresh=False) == (T0 + 2_000, Sample.USED)


def test_a_resent_event_keeps_its_original_moment() -> None:
    s = state()
    stamp(s, BOOT, 10_000, T0, fresh=True)
    # sent at uptime 4000, resent and received 40 s later: a delay, not a wrong offset
    assert stamp(s, BOOT, 4_000, T0 + 40_000, fresh=False) == (T0 - 6_000, Sample.USED)
    assert REANCHOR_MS > 40_000


def test_uptime_wrap_is_unwrapped() -> None:
    s = state()
    stamp(s, BOOT, 0xFFFF_F000, T0, fresh=True)
    assert stamp(s, BOOT, 0x0000_1000, T0 + 0x2000, fresh=True) == (T0 + 0x2000, Sample.USED)


def test_a_new_boot_starts_a_new_offset() -> None:
    s = state()
    stamp(s, BOOT, 50_000, T0, fresh=True)
    s.seq.boot_id = BOOT + 1
    assert stamp(s, BOOT + 1, 100, T0 + 1_000, fresh=True) == (T0 + 1_000, Sample.USED)
