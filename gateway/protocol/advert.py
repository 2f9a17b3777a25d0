"""The compact advertisement form: manufacturer data for nodes that never connect."""

from __future__ import annotations

import hmac
import struct
from typing import Final

from gateway.protocol.constants import (
    ADV_FLAG_AUTH,
    ADV_SIZE_EVENT,
    ADV_SIZE_HEARTBEAT,
    ADV_TAG_SIZE,
    PROTOCOL_VERSION,
    TEMPERATURE_UNKNOWN,
    MsgType,
)
from gateway.protocol.errors import ProtocolError, Reason
from gateway.protocol.messages import (
    Event,
    Heartbeat,
    Message,
    auth_tag,
    decode,
    encode,
)
from gateway.protocol.value import value

_KEY: Final = struct.Struct("<BQII")
_EVENT: Final = struct.Struct("<BH")
_HEARTBEAT: Final = struct.Struct("<Hb")
TEMPERATURE_UNKNOWN_C: Final = -128


@value
class Advert:
    kind: MsgType  # EVENT or HEARTBEAT
    node_id: int
    boot_id: int
    seq: int
    label: int = 0
    score: int = 0
    battery_mv: int = 0
    temperature_c: int = TEMPERATURE_UNKNOWN_C
    tag: bytes | None = None
    raw: bytes = b""


def encode_advert(adv: Advert, key: bytes | None = None) -> bytes:
    if adv.kind not in (MsgType.EVENT, MsgType.HEARTBEAT):
        raise ProtocolError(Reason.BAD_ADVERT, f"kind {adv.kind!r}")
    first = PROTOCOL_VERSION << 4 | (ADV_FLAG_AUTH if key is not None else 0) | adv.kind
    try:
        out = _KEY.pack(first, adv.node_id, adv.boot_id, adv.seq)
        if adv.kind == MsgType.EVENT:
            out += _EVENT.pack(adv.label, adv.score)
        else:
            out += _HEARTBEAT.pack(adv.battery_mv, adv.temperature_c)
    except struct.error as exc:
        raise ProtocolError(Reason.BAD_ADVERT, str(exc)) from exc
    if key is not None:
        out += auth_tag(key, out, ADV_TAG_SIZE)
    return out


def decode_advert(raw: bytes) -> Advert:
    """Decodes the manufacturer data that follows the company id."""
    if not raw or raw[0] >> 4 != PROTOCOL_VERSION:
        raise ProtocolError(Reason.BAD_ADVERT, "missing or unsupported version")
    kind_bits = raw[0] & 0x07
    auth = bool(raw[0] & ADV_FLAG_AUTH)
    if kind_bits not in (MsgType.EVENT, MsgType.HEARTBEAT):
        raise ProtocolError(Reason.BAD_ADVERT, f"kind {kind_bits}")
    kind = MsgType(kind_bits)
    size = (ADV_SIZE_EVENT if kind == MsgType.EVENT else ADV_SIZE_HEARTBEAT) + (
        ADV_TAG_SIZE if auth else 0
    )
    if len(raw) != size:
        raise ProtocolError(Reason.BAD_ADVERT, f"{len(raw)} bytes, expected {size}")
    _, node_id, boot_id, seq = _KEY.unpack_from(raw)
    tag = raw[-ADV_TAG_SIZE:] if auth else None
    if kind == MsgType.EVENT:
        label, score = _EVENT.unpack_from(raw, _KEY.size)
        return Advert(kind, node_id, boot_id, seq, label=label, score=score, tag=tag, raw=raw)
    battery, temperature = _HEARTBEAT.unpack_from(raw, _KEY.size)
    return Advert(
        kind, node_id, boot_id, seq, battery_mv=battery, temperature_c=temperature, tag=tag, raw=raw
    )


def verify_advert(adv: Advert, key: bytes) -> bool:
    if adv.tag is None:
        return False
    return hmac.compare_digest(auth_tag(key, adv.raw[:-ADV_TAG_SIZE], ADV_TAG_SIZE), adv.tag)


def advert_message(adv: Advert, uptime_ms: int) -> Message:
    """The wire message an advert stands for, stored and published like one.

    An EVENT advert carries no model id and no inference time (both 0); a HEARTBEAT
    advert no counters (0) and, since the node keeps no ring, ``retx_floor`` = seq + 1.
    Adverts carry no uptime: the caller gives one (the gateway's, so that it moves
    forward). The message is unsigned; the advert's own tag is checked with
    :func:`verify_advert`.
    """
    body: Event | Heartbeat
    if adv.kind == MsgType.EVENT:
        body = Event(0, adv.label, adv.score, 0)
    else:
        temperature = (
            TEMPERATURE_UNKNOWN
            if adv.temperature_c == TEMPERATURE_UNKNOWN_C
            else adv.temperature_c * 100
        )
        body = Heartbeat(adv.battery_mv, temperature, 0, 0, (adv.seq + 1) & 0xFFFFFFFF, 0)
    raw = encode(body, node_id=adv.node_id, boot_id=adv.boot_id, seq=adv.seq, uptime_ms=uptime_ms)
    return decode(raw)
