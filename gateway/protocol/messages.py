"""Typed wire messages and their codec (docs/protocol.md, "Messages").

Pure: no I/O, no asyncio, no third-party imports. ``decode`` raises
:class:`ProtocolError`; the stream decoders turn that into counters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
import struct
from collections.abc import Callable
from dataclasses import field
from typing import Final

from gateway.protocol.constants import (
    AUTH_TAG_SIZE,
    FLAG_AUTH,
    HEADER_SIZE,
    MAX_COMMAND_ARGS,
    MAX_COMMAND_RESULT,
    MAX_LABELS,
    MAX_LOG_TEXT,
    MAX_MESSAGE_SIZE,
    MAX_SCORES,
    MAX_STRING,
    MAX_WINDOW_RANK,
    MODEL_HASH_SIZE,
    PROTOCOL_VERSION,
    TEMPERATURE_UNKNOWN,
    MsgType,
)
from gateway.protocol.errors import ProtocolError, Reason
from gateway.protocol.value import value

_HEADER: Final = struct.Struct("<BBBQIII")
_U8: Final = struct.Struct("<B")
_EVENT_HEAD: Final = struct.Struct("<IBHIB")
_HEARTBEAT: Final = struct.Struct("<HhIIIH")
_INFO_HEAD: Final = struct.Struct("<BBHIH32s")
_COMMAND_HEAD: Final = struct.Struct("<HBB")
_COMMAND_ACK_HEAD: Final = struct.Struct("<HBBB")
_ACK: Final = struct.Struct("<II")
_WINDOW_TAIL: Final = struct.Struct("<fb")
TEMPERATURE_MIN_CDEG: Final = -27315  # absolute zero, in 0.01 degC


@value
class Header:
    """Fields every message carries. ``seq`` is the EVENT sequence number."""

    type: MsgType
    node_id: int
    boot_id: int
    seq: int
    uptime_ms: int
    flags: int = 0
    version: int = PROTOCOL_VERSION


@value
class FeatureWindow:
    """An int8 tensor the node fed its model; real value = scale * (q - zero_point)."""

    dims: tuple[int, ...]
    scale: float
    zero_point: int
    data: bytes


@value
class Event:
    model_id: int
    label: int
    score: int  # SCORE_SCALE: score / 65535 is the probability
    inference_us: int
    scores: tuple[int, ...] = ()
    window: FeatureWindow | None = None


@value
class Heartbeat:
    battery_mv: int
    temperature_cdeg: int
    inferences: int
    events_dropped: int
    retx_floor: int
    rx_errors: int


@value
class Info:
    protocol_version: int
    capabilities: int
    heartbeat_period_s: int
    sample_rate_hz: int
    threshold: int
    model_sha256: bytes
    firmware_version: str
    model_name: str
    labels: tuple[str, ...]


@value
class Log:
    level: int
    text: str


@value
class Command:
    request_id: int
    command: int
    args: bytes = b""


@value
class CommandAck:
    request_id: int
    command: int
    status: int
    result: bytes = b""


@value
class Ack:
    boot_id: int
    seq: int


Body = Event | Heartbeat | Info | Log | Command | CommandAck | Ack


@value
class Message:
    header: Header
    body: Body
    tag: bytes | None = None
    raw: bytes = field(default=b"", repr=False, compare=False)
    # what the decoder replaced because the specification rules it out (see sanitise)
    sanitised: tuple[str, ...] = field(default=(), compare=False)


def _bad(detail: str) -> ProtocolError:
    return ProtocolError(Reason.BAD_PAYLOAD, detail)


# ---- bodies ------------------------------------------------------------------


def _put_str(out: bytearray, text: str, limit: int) -> None:
    raw = text.encode()
    if len(raw) > limit:
        raise _bad(f"string of {len(raw)} bytes, limit {limit}")
    out.append(len(raw))
    out += raw


def _get_str(buf: bytes, pos: int, limit: int) -> tuple[str, int]:
    if pos >= len(buf):
        raise _bad("string length missing")
    n = buf[pos]
    end = pos + 1 + n
    if n > limit or end > len(buf):
        raise _bad(f"string of {n} bytes at {pos}")
    return buf[pos + 1 : end].decode("utf-8", errors="replace"), end


def _enc_event(e: Event, out: bytearray) -> None:
    if len(e.scores) > MAX_SCORES:
        raise _bad(f"{len(e.scores)} scores, limit {MAX_SCORES}")
    out += _EVENT_HEAD.pack(e.model_id, e.label, e.score, e.inference_us, len(e.scores))
    out += struct.pack(f"<{len(e.scores)}H", *e.scores)
    w = e.window
    if w is None:
        out.append(0)
        return
    if not 1 <= len(w.dims) <= MAX_WINDOW_RANK or _count(w.dims) != len(w.data):
        raise _bad(f"window dims {w.dims} do not match {len(w.data)} values")
    out.append(len(w.dims))
    out += struct.pack(f"<{len(w.dims)}H", *w.dims)
    out += _WINDOW_TAIL.pack(w.scale, w.zero_point)
    out += w.data


def _count(dims: tuple[int, ...]) -> int:
    n = 1
    for d in dims:
        n *= d
    return n


def _dec_event(buf: bytes, pos: int) -> Event:
    try:
        model_id, label, score, inference_us, n_scores = _EVENT_HEAD.unpack_from(buf, pos)
        pos += _EVENT_HEAD.size
        if n_scores > MAX_SCORES:
            raise _bad(f"{n_scores} scores")
        scores = struct.unpack_from(f"<{n_scores}H", buf, pos)
        pos += 2 * n_scores
        rank = buf[pos]
        pos += 1
        window = None
        if rank:
            if rank > MAX_WINDOW_RANK:
                raise _bad(f"window rank {rank}")
            dims = struct.unpack_from(f"<{rank}H", buf, pos)
            pos += 2 * rank
            scale, zero_point = _WINDOW_TAIL.unpack_from(buf, pos)
            pos += _WINDOW_TAIL.size
            n = _count(dims)
            if pos + n > len(buf):
                raise _bad(f"window of {n} values in {len(buf) - pos} bytes")
            window = FeatureWindow(dims, scale, zero_point, buf[pos : pos + n])
    except (struct.error, IndexError) as exc:
        raise _bad("event truncated") from exc
    return Event(model_id, label, score, inference_us, scores, window)


def _enc_heartbeat(h: Heartbeat, out: bytearray) -> None:
    out += _HEARTBEAT.pack(
        h.battery_mv, h.temperature_cdeg, h.inferences, h.events_dropped, h.retx_floor, h.rx_errors
    )


def _dec_heartbeat(buf: bytes, pos: int) -> Heartbeat:
    try:
        return Heartbeat(*_HEARTBEAT.unpack_from(buf, pos))
    except struct.error as exc:
        raise _bad("heartbeat truncated") from exc


def _enc_info(i: Info, out: bytearray) -> None:
    if len(i.model_sha256) != MODEL_HASH_SIZE or len(i.labels) > MAX_LABELS:
        raise _bad("model hash must be 32 bytes and labels at most 32")
    out += _INFO_HEAD.pack(
        i.protocol_version,
        i.capabilities,
        i.heartbeat_period_s,
        i.sample_rate_hz,
        i.threshold,
        i.model_sha256,
    )
    _put_str(out, i.firmware_version, MAX_STRING)
    _put_str(out, i.model_name, MAX_STRING)
    out.append(len(i.labels))
    for label in i.labels:
        _put_str(out, label, MAX_STRING)


def _dec_info(buf: bytes, pos: int) -> Info:
    try:
        head = _INFO_HEAD.unpack_from(buf, pos)
    except struct.error as exc:
        raise _bad("info truncated") from exc
    pos += _INFO_HEAD.size
    firmware, pos = _get_str(buf, pos, MAX_STRING)
    model, pos = _get_str(buf, pos, MAX_STRING)
    if pos >= len(buf) or buf[pos] > MAX_LABELS:
        raise _bad("label count missing or above 32")
    n_labels = buf[pos]
    pos += 1
    labels = []
    for _ in range(n_labels):
        label, pos = _get_str(buf, pos, MAX_STRING)
        labels.append(label)
    version, caps, heartbeat_s, rate_hz, threshold, sha = head
    return Info(version, caps, heartbeat_s, rate_hz, threshold, sha, firmware, model, tuple(labels))


def _enc_log(g: Log, out: bytearray) -> None:
    out.append(g.level)
    _put_str(out, g.text, MAX_LOG_TEXT)


def _dec_log(buf: bytes, pos: int) -> Log:
    if pos >= len(buf):
        raise _bad("log truncated")
    text, _ = _get_str(buf, pos + 1, MAX_LOG_TEXT)
    return Log(buf[pos], text)


def _enc_command(c: Command, out: bytearray) -> None:
    if len(c.args) > MAX_COMMAND_ARGS:
        raise _bad(f"{len(c.args)} argument bytes, limit {MAX_COMMAND_ARGS}")
    out += _COMMAND_HEAD.pack(c.request_id, c.command, len(c.args))
    out += c.args


def _dec_command(buf: bytes, pos: int) -> Command:
    try:
        request_id, command, n = _COMMAND_HEAD.unpack_from(buf, pos)
    except struct.error as exc:
        raise _bad("command truncated") from exc
    start = pos + _COMMAND_HEAD.size
    if n > MAX_COMMAND_ARGS or start + n > len(buf):
        raise _bad(f"command arguments of {n} bytes")
    return Command(request_id, command, buf[start : start + n])


def _enc_command_ack(a: CommandAck, out: bytearray) -> None:
    if len(a.result) > MAX_COMMAND_RESULT:
        raise _bad(f"{len(a.result)} result bytes, limit {MAX_COMMAND_RESULT}")
    out += _COMMAND_ACK_HEAD.pack(a.request_id, a.command, a.status, len(a.result))
    out += a.result


def _dec_command_ack(buf: bytes, pos: int) -> CommandAck:
    try:
        request_id, command, status, n = _COMMAND_ACK_HEAD.unpack_from(buf, pos)
    except struct.error as exc:
        raise _bad("command ack truncated") from exc
    start = pos + _COMMAND_ACK_HEAD.size
    if n > MAX_COMMAND_RESULT or start + n > len(buf):
        raise _bad(f"command result of {n} bytes")
    return CommandAck(request_id, command, status, buf[start : start + n])


def _enc_ack(a: Ack, out: bytearray) -> None:
    out += _ACK.pack(a.boot_id, a.seq)


def _dec_ack(buf: bytes, pos: int) -> Ack:
    try:
        return Ack(*_ACK.unpack_from(buf, pos))
    except struct.error as exc:
        raise _bad("ack truncated") from exc


_DECODERS: Final[dict[MsgType, Callable[[bytes, int], Body]]] = {
    MsgType.EVENT: _dec_event,
    MsgType.HEARTBEAT: _dec_heartbeat,
    MsgType.INFO: _dec_info,
    MsgType.LOG: _dec_log,
    MsgType.COMMAND: _dec_command,
    MsgType.COMMAND_ACK: _dec_command_ack,
    MsgType.ACK: _dec_ack,
}
_BODY_TYPES: Final[dict[type, MsgType]] = {
    Event: MsgType.EVENT,
    Heartbeat: MsgType.HEARTBEAT,
    Info: MsgType.INFO,
    Log: MsgType.LOG,
    Command: MsgType.COMMAND,
    CommandAck: MsgType.COMMAND_ACK,
    Ack: MsgType.ACK,
}
# a dict lookup is several times cheaper than MsgType(value) on the hot path
_TYPES: Final[dict[int, MsgType]] = {t.value: t for t in MsgType}


def _encode_body(body: Body, out: bytearray) -> None:
    match body:
        case Event():
            _enc_event(body, out)
        case Heartbeat():
            _enc_heartbeat(body, out)
        case Info():
            _enc_info(body, out)
        case Log():
            _enc_log(body, out)
        case Command():
            _enc_command(body, out)
        case CommandAck():
            _enc_command_ack(body, out)
        case Ack():
            _enc_ack(body, out)


# ---- value ranges ------------------------------------------------------------
# docs/protocol.md, "Value ranges". decode() applies these to every message, so
# every reader (the pipeline, each sink decoding a stored record again) sees the
# same cleaned body and nothing downstream meets a NaN, an infinity or a
# temperature below absolute zero. Each rule leaves out only the field it cannot
# trust: refusing a whole EVENT for a bad optional window would lose the node's
# inference result with it.


def window_problem(w: FeatureWindow) -> str | None:
    """Why a feature window cannot be used, or None when it can."""
    if not math.isfinite(w.scale) or w.scale <= 0:
        return f"quantisation scale {w.scale!r} is not a positive finite number"
    if not w.data:
        return f"dims {w.dims} hold no values"
    return None


def sanitise(body: Body) -> tuple[Body, tuple[str, ...]]:
    """The body with ruled-out values replaced, and one note per replacement."""
    # type() tests, not a match statement: this runs for every message, twice
    if type(body) is Event:
        w = body.window
        if w is not None and (problem := window_problem(w)) is not None:
            return dataclasses.replace(body, window=None), (f"window left out: {problem}",)
    elif type(body) is Heartbeat:
        t = body.temperature_cdeg
        if t < TEMPERATURE_MIN_CDEG and t != TEMPERATURE_UNKNOWN:
            note = f"temperature {t / 100} degC is below absolute zero: reported as not measured"
            return dataclasses.replace(body, temperature_cdeg=TEMPERATURE_UNKNOWN), (note,)
    return body, ()


# ---- messages ----------------------------------------------------------------


def model_id(model_sha256: bytes) -> int:
    """The u32 an EVENT names its model by: the first 4 bytes of the model file's SHA-256,
    read little-endian (docs/protocol.md; INFO carries the whole hash)."""
    return int.from_bytes(model_sha256[:4], "little")


def auth_tag(key: bytes, signed: bytes, size: int = AUTH_TAG_SIZE) -> bytes:
    """Truncated HMAC-SHA256 of ``signed`` under ``key``."""
    return hmac.new(key, signed, hashlib.sha256).digest()[:size]


def body_type(body: Body) -> MsgType:
    return _BODY_TYPES[type(body)]


def encode(
    body: Body,
    *,
    node_id: int,
    boot_id: int,
    seq: int,
    uptime_ms: int,
    key: bytes | None = None,
    flags: int = 0,
) -> bytes:
    """Encodes one message. With ``key`` the AUTH flag is set and the tag appended.

    Raises ProtocolError(BAD_PAYLOAD) for out-of-range fields and
    ``struct.error`` never escapes: integers are range-checked by packing.
    """
    flags = (flags & ~FLAG_AUTH) | (FLAG_AUTH if key is not None else 0)
    out = bytearray()
    try:
        out += _HEADER.pack(
            PROTOCOL_VERSION, body_type(body), flags, node_id, boot_id, seq, uptime_ms
        )
        _encode_body(body, out)
    except struct.error as exc:
        raise _bad(str(exc)) from exc
    if key is not None:
        out += auth_tag(key, bytes(out))
    if len(out) > MAX_MESSAGE_SIZE:
        raise _bad(f"message of {len(out)} bytes, limit {MAX_MESSAGE_SIZE}")
    return bytes(out)


def decode(raw: bytes) -> Message:
    """Decodes one whole message (no CRC). Trailing unknown payload bytes are ignored.

    Values the specification rules out are replaced (:func:`sanitise`) and
    listed in ``Message.sanitised``.
    """
    n = len(raw)
    if n < HEADER_SIZE:
        raise ProtocolError(Reason.TOO_SHORT, f"{n} bytes, a header is {HEADER_SIZE}")
    if n > MAX_MESSAGE_SIZE:
        raise ProtocolError(Reason.TOO_LONG, f"{n} bytes, limit {MAX_MESSAGE_SIZE}")
    version, type_, flags, node_id, boot_id, seq, uptime_ms = _HEADER.unpack_from(raw)
    if version != PROTOCOL_VERSION:
        raise ProtocolError(Reason.UNSUPPORTED_VERSION, f"version {version}")
    msg_type = _TYPES.get(type_)
    if msg_type is None:
        raise ProtocolError(Reason.UNKNOWN_TYPE, f"type 0x{type_:02x}")
    tag = None
    payload = raw
    if flags & FLAG_AUTH:
        if n < HEADER_SIZE + AUTH_TAG_SIZE:
            raise ProtocolError(Reason.TOO_SHORT, "message shorter than its tag")
        payload = raw[:-AUTH_TAG_SIZE]
        tag = raw[-AUTH_TAG_SIZE:]
    body, notes = sanitise(_DECODERS[msg_type](payload, HEADER_SIZE))
    header = Header(msg_type, node_id, boot_id, seq, uptime_ms, flags, version)
    return Message(header, body, tag, raw, notes)


def verify(message: Message, key: bytes) -> bool:
    """True when ``message`` carries a tag and it is valid under ``key``."""
    if message.tag is None:
        return False
    expected = auth_tag(key, message.raw[:-AUTH_TAG_SIZE])
    return hmac.compare_digest(expected, message.tag)
