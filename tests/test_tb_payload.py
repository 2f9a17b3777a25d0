"""ThingsBoard payload rules on the gateway side: distinct ts, packing, value cleaning."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gateway.fields import dumps
from gateway.model import node_hex
from gateway.sinks.ratelimit import RateLimit
from gateway.sinks.tb_payload import (
    TS_JUMP_BACK_MS,
    DistinctTs,
    TelemetryPacker,
    clean,
    entry,
    flatten,
    telemetry_values,
)

T = 1_790_000_000_000


def test_same_millisecond_events_get_distinct_increasing_ts() -> None:
    ts = DistinctTs()
    assert [ts.stamp("a", T) for _ in range(4)] == [T, T + 1, T + 2, T + 3]
    assert ts.stamp("b", T) == T  # per device
    assert ts.stamp("a", T + 2) == T + 4  # an older stamp goes after the last one
    assert ts.stamp("a", T + 100) == T + 100


def test_rewind_gives_a_resend_the_same_ts() -> None:
    ts = DistinctTs({"a": T})
    first = [ts.stamp("a", T) for _ in range(3)]
    ts.confirm({"a": first[0]})
    ts.rewind()  # reconnect: records after the first are sent again
    assert [ts.stamp("a", T) for _ in range(2)] == first[1:]


def test_a_clock_corrected_far_backwards_is_followed() -> None:
    ts = DistinctTs({"a": T})
    back = T - TS_JUMP_BACK_MS - 1
    assert ts.stamp("a", back) == back
    assert ts.jumps_back == 1


def test_values_the_server_refuses_are_cleaned() -> None:
    out = clean(
        {"nan": math.nan, "inf": -math.inf, "none": None, "big": 1 << 70, "ok": 1.5, "b": True}
    )
    assert out == {"big": str(1 << 70), "ok": 1.5, "b": True}
    dumps(out)  # orjson raises for an integer beyond 64 bits


def test_telemetry_keys_follow_the_filter_and_the_field_table() -> None:
    fields = {"schema": 1, "node": "x", "ts": T, "label": "idle", "score": 0.5, "model_id": "00001234",
              "level": "warning", "text": "hot", "window": {"dims": [1]}}  # fmt: skip
    got = telemetry_values(fields, frozenset({"label", "model_id", "log_level", "log_text"}))
    assert got == {
        "label": "idle",
        "model_id": "0x00001234",
        "log_level": "warning",
        "log_text": "hot",
    }


def test_flatten_makes_dotted_keys_and_drops_lists() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": None, "e": "x"}}, "l": [1], "u": 2}) == {
        "a.b": 1,
        "a.c.e": "x",
        "u": 2,
    }


@given(
    st.lists(
        st.tuples(st.sampled_from(["dev-a", "dev-b", "ü-dev"]), st.integers(1, 40)), max_size=200
    ),
    st.integers(200, 4000),
)
def test_packed_payloads_never_exceed_the_size_and_parse_back(
    items: list[tuple[str, int]], max_bytes: int
) -> None:
    packer = TelemetryPacker(max_bytes, None, None)
    payloads, sent = [], []
    for i, (device, n) in enumerate(items):
        text = entry(T + i, dumps({f"k{j}": j for j in range(n)}))
        name = dumps(device)
        if len(text) + len(name) + 5 > max_bytes:
            continue  # the sink refuses such an entry on its own
        if not packer.fits(name, text, n):
            payloads.append(packer.payload())
            packer.clear()
        packer.add(name, text, n)
        sent.append((device, T + i))
    if packer:
        payloads.append(packer.payload())
    got = []
    for p in payloads:
        assert len(p) <= max_bytes
        for device, entries in json.loads(p).items():
            got += [(device, e["ts"]) for e in entries]
    assert sorted(got) == sorted(sent)


def test_batching_off_means_one_entry_per_publish_and_points_are_capped() -> None:
    one = TelemetryPacker(10_000, None, 1)
    one.add(b'"d"', entry(T, dumps({"a": 1})), 1)
    assert not one.fits(b'"d"', entry(T + 1, dumps({"a": 1})), 1)
    capped = TelemetryPacker(10_000, 5, None)
    capped.add(b'"d"', entry(T, dumps({"a": 1, "b": 2, "c": 3})), 3)
    assert not capped.fits(b'"d"', entry(T + 1, dumps({"a": 1, "b": 2, "c": 3})), 3)


def test_rate_limit_buckets_refill_at_the_stated_rate() -> None:
    now = [0.0]
    lim = RateLimit([(10, 1.0), (100, 60.0)], share=0.8, clock=lambda: now[0])
    assert lim.capacity == 8
    for _ in range(8):
        assert lim.wait_s() == 0
        lim.take()
    assert math.isclose(lim.wait_s(), 1 / 8)
    now[0] += 1.0
    assert lim.wait_s(8) == 0  # the per-second bucket is full again
    assert RateLimit([]).capacity is None and RateLimit([]).wait_s(10**6) == 0


async def test_the_thingsboard_planner_changes_nothing_until_its_publishes_start(
    tmp_path: Path,
) -> None:
    """Planning the same records twice gives the same publishes; only starting them (their
    effects) connects devices, awaits attribute answers and moves the ts per device."""
    from gateway.model import Record, RecordKind
    from gateway.protocol import Event, encode
    from gateway.service import build
    from tests.peers import gateway_config

    tb = {"enabled": True, "access_token": "T", "port": 1}
    gw = await build(gateway_config(tmp_path, None, [], mqtt={"enabled": False}, thingsboard=tb))
    sink = gw.sinks[0]
    node = 0xE000
    status = b'{"online": true, "reason": "message received"}'
    records = [Record(1, RecordKind.STATUS, node, 1, 0, 0, T, True, "serial", status)]
    for seq in (1, 2, 3):  # the same millisecond: distinct ts only by the plan's own stamps
        raw = encode(Event(1, 0, 100, 5), node_id=node, boot_id=1, seq=seq, uptime_ms=1)
        records.append(Record(1 + seq, RecordKind.EVENT, node, 1, seq, 1, T, True, "serial", raw))
    before = (set(sink._connected), dict(sink._requests.awaiting), dict(sink._ts.sent))
    first = sink._plan(records)
    again = sink._plan(records)
    assert [(p.topic, p.marks) for p in first] == [(p.topic, p.marks) for p in again]
    assert (set(sink._connected), dict(sink._requests.awaiting), dict(sink._ts.sent)) == before
    for pub in first:
        await sink._start(pub)
    assert sink._connected == {node_hex(node)}
    assert len(sink._requests.awaiting) == 2 * 3  # one per shared key, from announce and online
    assert sink._ts.sent == {node_hex(node): T + 2}
    await gw.outbox.close()
