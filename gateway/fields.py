"""The one field table every sink maps from (docs/topics.md, "Payload fields").

Key names are part of the product's interface: the Node-RED flows and the
ThingsBoard rule chains rely on them, so they change only with ``SCHEMA``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Final

import orjson

from gateway.model import ADVERT_TRANSPORT, Record, RecordKind, node_hex
from gateway.protocol import Event, Heartbeat, Info, Log, LogLevel, decode, model_id
from gateway.protocol.constants import SCORE_SCALE, TEMPERATURE_UNKNOWN, Capability

SCHEMA: Final = 1


@dataclass(frozen=True, slots=True)
class NodeMeta:
    """What the configuration and the node's last INFO say about a node."""

    name: str | None = None
    group: str | None = None
    labels: tuple[str, ...] = ()


def dumps(obj: Any) -> bytes:
    """Compact JSON, UTF-8: every payload a sink sends goes through here.

    orjson renders a record's payload in a tenth of the time the standard library takes
    (0.5 against 4.8 µs, docs/decisions.md), and every record is rendered once per sink.
    JSON has no form for NaN or infinity: orjson writes ``null`` for them, as JavaScript
    does; the decoder's range rules keep them out of records in the first place. An
    integer beyond 64 bits raises ``TypeError``, which fails that one record's rendering;
    ``loads`` refuses such integers from peers, so none comes back in an answer.
    """
    return orjson.dumps(obj)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(text: str | bytes | bytearray) -> Any:
    """JSON from a peer, refusing ``NaN`` and ``Infinity`` (json.loads takes them by
    default) and integers that do not fit 64 bits.

    What a command carries (its ``id``) comes back in the answer, which
    :func:`dumps` must be able to render.
    """
    return json.loads(text, parse_constant=_no_constant, parse_int=_int64)


def _int64(digits: str) -> int:
    n = int(digits)
    if not _INT_MIN <= n <= _INT_MAX:
        raise ValueError(f"integer {digits[:24]} does not fit 64 bits")
    return n


_INT_MIN: Final = -(1 << 63)
_INT_MAX: Final = (1 << 64) - 1  # the widest integers JSON renders (orjson: i64 and u64)


def dedup_key(node_id: int, boot_id: int, seq: int, epoch: int = 0) -> str:
    """``<node>:<boot>:<seq>``; after the gateway accepted a boot-counter reset or forgot
    the node, ``<node>:<boot>:<seq>:<epoch>``, so that a key never names two events."""
    key = f"{node_hex(node_id)}:{boot_id}:{seq}"
    return f"{key}:{epoch}" if epoch else key


def _score(raw: int) -> float:
    return round(raw / SCORE_SCALE, 6)


def _label(labels: tuple[str, ...], index: int) -> str | None:
    return labels[index] if index < len(labels) else None


def _event(e: Event, meta: NodeMeta) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": _label(meta.labels, e.label),
        "label_index": e.label,
        "score": _score(e.score),
        "score_raw": e.score,
        "score_scale": SCORE_SCALE,
        "model_id": f"{e.model_id:08x}",
        "inference_us": e.inference_us,
    }
    if e.scores:
        out["scores"] = [_score(s) for s in e.scores]
    if e.window is not None:
        w = e.window
        out["window"] = {
            "dims": list(w.dims),
            "scale": w.scale,
            "zero_point": w.zero_point,
            "data_b64": base64.b64encode(w.data).decode(),
        }
    return out


def _heartbeat(h: Heartbeat) -> dict[str, Any]:
    return {
        "battery_mv": h.battery_mv or None,
        "temperature_c": None
        if h.temperature_cdeg == TEMPERATURE_UNKNOWN
        else h.temperature_cdeg / 100,
        "inferences": h.inferences,
        "events_dropped": h.events_dropped,
        "retx_floor": h.retx_floor,
        "rx_errors": h.rx_errors,
    }


def info_fields(i: Info) -> dict[str, Any]:
    return {
        "protocol_version": i.protocol_version,
        "capabilities": [c.name.lower() for c in Capability if i.capabilities & c],
        "firmware_version": i.firmware_version,
        "model_name": i.model_name,
        "model_sha256": i.model_sha256.hex(),
        "model_id": f"{model_id(i.model_sha256):08x}",
        "labels": list(i.labels),
        "sample_rate_hz": i.sample_rate_hz,
        "heartbeat_period_s": i.heartbeat_period_s,
        "threshold": _score(i.threshold),
    }


def _log(g: Log) -> dict[str, Any]:
    try:
        level = LogLevel(g.level).name.lower()
    except ValueError:
        level = str(g.level)
    return {"level": level, "text": g.text}


def record_fields(record: Record, gateway_id: str, meta: NodeMeta) -> dict[str, Any]:
    """The JSON object for one outbox record: common fields, then the kind's own."""
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": record.kind.value,
        "gateway": gateway_id,
        "node": node_hex(record.node_id),
        "name": meta.name,
        "group": meta.group,
        "boot": record.boot_id,
        "seq": record.seq,
        "ts": record.ts_ms,
        "clock_synced": record.clock_synced,
        "uptime_ms": record.uptime_ms,
        "transport": record.transport,
    }
    if record.kind == RecordKind.EVENT:
        out["key"] = dedup_key(record.node_id, record.boot_id, record.seq, record.epoch)
    if record.rssi is not None and record.kind in (RecordKind.HEARTBEAT, RecordKind.STATUS):
        out["rssi"] = record.rssi
    if record.transport == ADVERT_TRANSPORT:
        out["uptime_ms"] = None  # adverts carry none; ts is the arrival time
    if record.kind == RecordKind.STATUS:
        out.update(json.loads(record.data))
        return out
    body = decode(record.data).body
    match body:
        case Event():
            out.update(_event(body, meta))
            if record.verdict is not None:
                out.update(loads(record.verdict))
        case Heartbeat():
            out.update(_heartbeat(body))
        case Info():
            out.update(info_fields(body))
        case Log():
            out.update(_log(body))
    return out
