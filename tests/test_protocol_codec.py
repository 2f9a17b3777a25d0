"""Properties of the Python codec and the stream decoder (hypothesis, no time limits)."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocol import (
    Ack,
    Body,
    Command,
    CommandAck,
    Event,
    FeatureWindow,
    FrameDecoder,
    Heartbeat,
    Info,
    Log,
    ProtocolError,
    Reason,
    Reassembler,
    cobs,
    decode,
    encode,
    encode_frame,
    fragment,
)
from gateway.protocol.constants import (
    BLE_MAX_ATT_MTU,
    BLE_MIN_ATT_MTU,
    MAX_FRAME_SIZE,
    MAX_LABELS,
    MAX_LOG_TEXT,
    MAX_STRING,
)

settings.register_profile("ci", deadline=None, max_examples=300)
settings.load_profile("ci")

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)


def text(limit: int) -> st.SearchStrategy[str]:
    return st.text(max_size=limit // 4)  # up to 4 UTF-8 bytes per character


@st.composite
def windows(draw: st.DrawFn) -> FeatureWindow:
    dims = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))  # <= 625 values: fits
    n = 1
    for d in dims:
        n *= d
    # the specification's range: positive and finite (others: test_ruled_out_values_*)
    scale = draw(st.floats(min_value=0, exclude_min=True, width=32, allow_infinity=False))
    return FeatureWindow(
        dims, scale, draw(st.integers(-128, 127)), draw(st.binary(min_size=n, max_size=n))
    )


bodies: st.SearchStrategy[Body] = st.one_of(
    st.builds(
        Event, u32, u8, u16, u32, st.lists(u16, max_size=32).map(tuple), st.none() | windows()
    ),
    st.builds(Heartbeat, u16, st.integers(-27315, 32767) | st.just(-32768), u32, u32, u32, u16),
    st.builds(
        Info,
        u8,
        u8,
        u16,
        u32,
        u16,
        st.binary(min_size=32, max_size=32),
        text(MAX_STRING),
        text(MAX_STRING),
        st.lists(text(MAX_STRING), max_size=MAX_LABELS).map(tuple),
    ),
    st.builds(Log, u8, text(MAX_LOG_TEXT)),
    st.builds(Command, u16, u8, st.binary(max_size=32)),
    st.builds(CommandAck, u16, u8, u8, st.binary(max_size=64)),
    st.builds(Ack, u32, u32),
)


@given(
    body=bodies,
    node=st.integers(0, 2**64 - 1),
    boot=u32,
    seq=st.integers(1, 2**32 - 1),
    uptime=u32,
    key=st.none() | st.binary(min_size=1, max_size=64),
)
def test_every_message_round_trips_through_a_frame(
    body: Body, node: int, boot: int, seq: int, uptime: int, key: bytes | None
) -> None:
    raw = encode(body, node_id=node, boot_id=boot, seq=seq, uptime_ms=uptime, key=key)
    [m] = FrameDecoder().feed(encode_frame(raw))
    assert m.body == body
    assert (m.header.node_id, m.header.boot_id, m.header.seq, m.header.uptime_ms) == (
        node,
        boot,
        seq,
        uptime,
    )
    assert (m.tag is not None) == (key is not None)


@given(st.binary(max_size=3000))
def test_cobs_round_trips_and_never_contains_zero(data: bytes) -> None:
    enc = cobs.encode(data)
    assert b"\x00" not in enc
    assert cobs.decode(enc) == data


@given(st.lists(st.binary(max_size=300), max_size=20), st.integers(1, 64))
def test_arbitrary_streams_never_raise_and_only_yield_crc_valid_frames(
    chunks: list[bytes], cut: int
) -> None:
    decoder = FrameDecoder()
    stream = b"".join(chunks)
    found = []
    for i in range(0, len(stream), cut):
        found += decoder.feed(stream[i : i + cut])
    # Every message yielded came from a chunk whose CRC matched.
    for m in found:
        body = m.raw
        framed = encode_frame(body)
        assert framed[1:-1] in stream
        assert zlib.crc32(body).to_bytes(4, "little") in cobs.decode(framed[1:-1])


EVENT = encode(Event(1, 2, 3, 4), node_id=5, boot_id=6, seq=7, uptime_ms=8)


@given(st.binary(max_size=2000), st.binary(max_size=2000), st.integers(1, 50))
def test_a_valid_frame_between_garbage_is_always_found(
    before: bytes, after: bytes, cut: int
) -> None:
    stream = before + encode_frame(EVENT) + after
    decoder = FrameDecoder()
    found = []
    for i in range(0, len(stream), cut):
        found += decoder.feed(stream[i : i + cut])
    assert EVENT in [m.raw for m in found]


def test_glued_frames_one_byte_at_a_time() -> None:
    frames = [
        encode_frame(encode(Event(1, 2, 3, 4), node_id=1, boot_id=1, seq=s, uptime_ms=s))
        for s in range(1, 101)
    ]
    stream = b"".join(frames)
    decoder = FrameDecoder()
    seqs = [m.header.seq for b in stream for m in decoder.feed(bytes([b]))]
    assert seqs == list(range(1, 101))
    assert decoder.frames_bad == 0 and decoder.frames_ok == 100


def test_each_bad_frame_is_counted_by_reason_and_good_ones_survive() -> None:
    good = encode_frame(EVENT)
    flipped = bytearray(EVENT)
    flipped[10] ^= 0x01
    # the original CRC over a body with one flipped bit
    wrong_crc = (
        b"\x00" + cobs.encode(bytes(flipped) + zlib.crc32(EVENT).to_bytes(4, "little")) + b"\x00"
    )
    v2 = encode_frame(b"\x02" + EVENT[1:])
    unknown = encode_frame(EVENT[:1] + b"\x7e" + EVENT[2:])
    short_payload = encode_frame(EVENT[:-3])
    truncated = good[: len(good) // 2]  # runs into the next frame's delimiter: bad COBS
    huge = b"\x55" * (3 * MAX_FRAME_SIZE)
    stream = b"".join(
        [
            good,
            bytes(wrong_crc),
            good,
            v2,
            unknown,
            short_payload,
            truncated,
            good,
            huge,
            b"\x00",
            good,
            b"\x00\x00\x01\x00",  # a COBS-valid but empty-bodied frame
            b"\x00\x05\x01\x00",  # a code that runs past the frame
        ]
    )
    decoder = FrameDecoder()
    found = decoder.feed(stream)
    assert len(found) == 4
    assert decoder.errors == {
        Reason.BAD_CRC: 1,
        Reason.UNSUPPORTED_VERSION: 1,
        Reason.UNKNOWN_TYPE: 1,
        Reason.BAD_PAYLOAD: 1,
        Reason.TOO_LONG: 1,
        Reason.TOO_SHORT: 1,
        Reason.BAD_COBS: 2,
    }


def test_memory_stays_bounded_on_endless_garbage() -> None:
    decoder = FrameDecoder()
    for _ in range(1000):
        decoder.feed(b"\x01" * 4096)
        assert len(decoder._pending) <= MAX_FRAME_SIZE
    decoder.feed(encode_frame(EVENT))
    assert decoder.errors[Reason.TOO_LONG] == 1


def test_every_truncation_of_every_type_is_refused() -> None:
    samples: list[Body] = [
        Event(1, 2, 3, 4, (5, 6), FeatureWindow((2, 3), 0.5, 1, bytes(6))),
        Heartbeat(1, 2, 3, 4, 5, 6),
        Info(1, 2, 3, 4, 5, bytes(32), "fw", "model", ("a", "b")),
        Log(1, "hello"),
        Command(1, 2, b"\x01\x02"),
        CommandAck(1, 2, 3, b"\x04"),
        Ack(1, 2),
    ]
    for body in samples:
        raw = encode(body, node_id=1, boot_id=2, seq=3, uptime_ms=4)
        assert decode(raw).body == body
        for cut in range(len(raw)):
            try:
                decode(raw[:cut])
            except ProtocolError:
                continue
            raise AssertionError(f"{type(body).__name__} cut at {cut} was accepted")


def test_trailing_bytes_from_a_newer_minor_revision_are_ignored() -> None:
    raw = encode(Heartbeat(1, 2, 3, 4, 5, 6), node_id=1, boot_id=2, seq=3, uptime_ms=4)
    assert decode(raw + b"\x99\x98").body == Heartbeat(1, 2, 3, 4, 5, 6)


def test_encoder_refuses_out_of_range_fields() -> None:
    bad: list[Body] = [
        Event(2**32, 0, 0, 0),
        Event(1, 256, 0, 0),
        Event(1, 1, 1, 1, tuple(range(33))),
        Event(1, 1, 1, 1, (), FeatureWindow((2, 2), 1.0, 0, bytes(3))),
        Log(1, "x" * (MAX_LOG_TEXT + 1)),
        Info(1, 1, 1, 1, 1, bytes(31), "", "", ()),
        Command(1, 1, bytes(33)),
        CommandAck(1, 1, 1, bytes(65)),
    ]
    for body in bad:
        with pytest.raises(ProtocolError) as info:
            encode(body, node_id=1, boot_id=1, seq=1, uptime_ms=1)
        assert info.value.reason == Reason.BAD_PAYLOAD, body


@given(st.binary(min_size=1, max_size=1024), u8, st.integers(BLE_MIN_ATT_MTU, BLE_MAX_ATT_MTU))
def test_fragments_reassemble(message: bytes, tag: int, mtu: int) -> None:
    frags = fragment(message, tag, mtu)
    assert all(len(f) <= mtu - 3 for f in frags)
    r = Reassembler()
    assert [r.push(f) for f in frags][-1] == message


def test_reassembler_reports_loss_and_recovers() -> None:
    message = bytes(range(100))
    frags = fragment(message, 1, 23)
    r = Reassembler()
    r.push(frags[0])
    with pytest.raises(ProtocolError) as info:
        r.push(frags[2])
    assert info.value.reason == Reason.BAD_FRAGMENT
    assert [r.push(f) for f in frags][-1] == message
    for bad in (b"", b"\x01\x80"):
        with pytest.raises(ProtocolError):
            r.push(bad)


@given(
    st.floats(width=32),  # every f32 the wire can carry: NaN, both infinities, zero, negatives
    st.lists(st.integers(0, 3), min_size=1, max_size=3).map(tuple),
    st.integers(-32768, 32767),
)
def test_ruled_out_values_are_replaced_by_the_decoder(
    scale: float, dims: tuple[int, ...], temperature: int
) -> None:
    n = 1
    for d in dims:
        n *= d
    window = FeatureWindow(dims, scale, 0, bytes(n))
    event = decode(encode(Event(1, 0, 2, 3, (), window), node_id=1, boot_id=1, seq=1, uptime_ms=1))
    usable = scale > 0 and scale != float("inf") and n > 0  # NaN fails "scale > 0"
    assert isinstance(event.body, Event)
    if usable:
        assert event.body.window == window and event.sanitised == ()
    else:
        assert event.body.window is None
        assert len(event.sanitised) == 1 and "window left out" in event.sanitised[0]
    assert (event.body.label, event.body.score, event.body.inference_us) == (0, 2, 3)

    hb = decode(
        encode(Heartbeat(1, temperature, 3, 4, 5, 6), node_id=1, boot_id=1, seq=1, uptime_ms=1)
    )
    assert isinstance(hb.body, Heartbeat)
    if temperature >= -27315 or temperature == -32768:
        assert hb.body.temperature_cdeg == temperature and hb.sanitised == ()
    else:
        assert hb.body.temperature_cdeg == -32768 and "absolute zero" in hb.sanitised[0]
    assert hb.body.retx_floor == 5


def test_ruled_out_values_reach_no_reader_through_the_stream_decoder() -> None:
    bad = Event(1, 0, 2, 3, (), FeatureWindow((2,), float("nan"), 0, bytes(2)))
    raw = encode(bad, node_id=1, boot_id=1, seq=1, uptime_ms=1)
    [msg] = FrameDecoder().feed(encode_frame(raw))
    assert isinstance(msg.body, Event) and msg.body.window is None
    assert msg.raw == raw  # stored as sent; decoding it again gives the same cleaned body
    assert decode(msg.raw).body == msg.body
