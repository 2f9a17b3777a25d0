"""The JSON form of messages that the C tool (tgw_vectors) prints; used to compare both sides."""

from __future__ import annotations

import struct
from typing import Any

from gateway.protocol import (
    Ack,
    Advert,
    Body,
    Command,
    CommandAck,
    Event,
    FeatureWindow,
    Heartbeat,
    Info,
    Log,
    Message,
    MsgType,
)


def f32(x: float) -> float:
    """Rounds to float32, so C's "%.9g" and Python's double compare equal."""
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def body_to_dict(body: Body) -> dict[str, Any]:
    match body:
        case Event():
            w = body.window
            return {
                "model_id": body.model_id,
                "label": body.label,
                "score": body.score,
                "inference_us": body.inference_us,
                "scores": list(body.scores),
                "window": None
                if w is None
                else {
                    "dims": list(w.dims),
                    "scale": f32(w.scale),
                    "zero_point": w.zero_point,
                    "data": w.data.hex(),
                },
            }
        case Heartbeat() | Ack():
            return {k: getattr(body, k) for k in body.__slots__}
        case Info():
            d = {k: getattr(body, k) for k in body.__slots__}
            d["model_sha256"] = body.model_sha256.hex()
            d["labels"] = list(body.labels)
            return d
        case Log():
            return {"level": body.level, "text": body.text}
        case Command():
            return {"request_id": body.request_id, "command": body.command, "args": body.args.hex()}
        case CommandAck():
            return {
                "request_id": body.request_id,
                "command": body.command,
                "status": body.status,
                "result": body.result.hex(),
            }
    raise TypeError(body)


def message_to_dict(m: Message) -> dict[str, Any]:
    h = m.header
    return {
        "header": {
            "version": h.version,
            "type": int(h.type),
            "flags": h.flags,
            "node_id": f"{h.node_id:016x}",
            "boot_id": h.boot_id,
            "seq": h.seq,
            "uptime_ms": h.uptime_ms,
        },
        "body": body_to_dict(m.body),
        "tag": None if m.tag is None else m.tag.hex(),
    }


def body_from_dict(msg_type: int, d: dict[str, Any]) -> Body:
    t = MsgType(msg_type)
    if t == MsgType.EVENT:
        w = d["window"]
        window = (
            None
            if w is None
            else FeatureWindow(
                tuple(w["dims"]), w["scale"], w["zero_point"], bytes.fromhex(w["data"])
            )
        )
        return Event(
            d["model_id"], d["label"], d["score"], d["inference_us"], tuple(d["scores"]), window
        )
    if t == MsgType.HEARTBEAT:
        return Heartbeat(**d)
    if t == MsgType.INFO:
        return Info(
            **{**d, "model_sha256": bytes.fromhex(d["model_sha256"]), "labels": tuple(d["labels"])}
        )
    if t == MsgType.LOG:
        return Log(**d)
    if t == MsgType.COMMAND:
        return Command(d["request_id"], d["command"], bytes.fromhex(d["args"]))
    if t == MsgType.COMMAND_ACK:
        return CommandAck(d["request_id"], d["command"], d["status"], bytes.fromhex(d["result"]))
    return Ack(**d)


def normalise(d: Any) -> Any:
    """C prints floats with 9 digits: round every float to float32 before comparing."""
    if isinstance(d, dict):
        return {k: normalise(v) for k, v in d.items()}
    if isinstance(d, list):
        return [normalise(v) for v in d]
    if isinstance(d, float):
        return f32(d)
    return d


def advert_to_dict(a: Advert) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": int(a.kind),
        "auth": a.tag is not None,
        "node_id": f"{a.node_id:016x}",
        "boot_id": a.boot_id,
        "seq": a.seq,
    }
    if a.kind == MsgType.EVENT:
        d |= {"label": a.label, "score": a.score}
    else:
        d |= {"battery_mv": a.battery_mv, "temperature_c": a.temperature_c}
    d["tag"] = None if a.tag is None else a.tag.hex()
    return d
