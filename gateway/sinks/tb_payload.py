"""What the ThingsBoard bridge sends, built so the server accepts every byte of it.

The server's rules (docs/thingsboard.md): telemetry is ``{"<device>": [{"ts", "values"}]}``
with each device's value an array; values are JSON primitives or objects, never
NaN or infinity, integers within 64 bits; ThingsBoard keeps one value per
(device, key, ts), so every entry of a device gets a distinct millisecond.
Field names come from the one field table (``gateway.fields``); only the
filter and a few value forms differ here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

from gateway.fields import info_fields
from gateway.model import Record, RecordKind
from gateway.protocol import Info

# What record_fields() carries that is not telemetry: the device, its attributes, the ts itself
_NOT_TELEMETRY: Final = frozenset(
    {"schema", "kind", "gateway", "node", "name", "group", "ts", "score_scale", "level", "text"}
)
_I64: Final = 1 << 63
# A jump back by more than this restarts the device's clock instead of bumping past it
TS_JUMP_BACK_MS: Final = 60_000
TELEMETRY_KINDS: Final = frozenset({RecordKind.EVENT, RecordKind.HEARTBEAT, RecordKind.LOG})


def clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """Drops what the server would refuse or ignore: None, NaN, infinity, huge integers."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        huge = isinstance(value, int) and not isinstance(value, bool) and not -_I64 <= value < _I64
        # a huge integer stays a string on the server; as a number it would be refused
        out[key] = str(value) if huge else value
    return out


def _hex_id(value: Any) -> Any:
    # ThingsBoard casts numeric-looking strings to numbers ("00001234" -> 1234); "0x"
    # keeps a model id a string on every server setting
    return f"0x{value}" if isinstance(value, str) else value


def telemetry_values(fields: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """The telemetry keys of one record's field table, filtered by the configuration."""
    picked = {k: v for k, v in fields.items() if k not in _NOT_TELEMETRY and k in allowed}
    if "level" in fields and "log_level" in allowed:
        picked["log_level"] = fields["level"]
    if "text" in fields and "log_text" in allowed:
        picked["log_text"] = fields["text"]
    for key in ("model_id", "verify_model"):
        if key in picked:
            picked[key] = _hex_id(picked[key])
    return clean(picked)


def node_attributes(
    *, node: str, gateway: str, transport: str, info: Info | None, online: bool | None = None
) -> dict[str, Any]:
    """Client attributes of a node's device: what it is and where it is connected."""
    out: dict[str, Any] = {"node": node, "gateway": gateway, "online": online}
    if transport:
        out["transport"] = transport
    if info is not None:
        attrs = info_fields(info)
        attrs["model_id"] = _hex_id(attrs["model_id"])
        out.update(attrs)
    return clean(out)


def flatten(payload: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested health sections as dotted telemetry keys (``outbox.used_bytes``)."""
    out: dict[str, Any] = {}
    for key, value in payload.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        elif not isinstance(value, list):
            out[name] = value
    return clean(out)


class DistinctTs:
    """Gives every telemetry entry of a device its own millisecond, in send order.

    ``sent`` runs ahead while publishes are in flight; ``confirmed`` is what the
    server has, and is stored with the sink's cursor. After a reconnect or a
    restart the sink re-sends from its cursor and rewinds to ``confirmed``, so a
    re-sent entry gets the same ts as before and overwrites itself on the server.
    """

    def __init__(self, confirmed: Mapping[str, int] | None = None) -> None:
        self.confirmed: dict[str, int] = dict(confirmed or {})
        self.sent: dict[str, int] = dict(self.confirmed)
        self.jumps_back = 0

    def stamp(self, device: str, ts: int) -> int:
        last = self.sent.get(device)
        if last is not None and ts <= last:
            if last - ts > TS_JUMP_BACK_MS:
                self.jumps_back += 1  # the clock was corrected backwards: follow it
            else:
                ts = last + 1
        self.sent[device] = ts
        return ts

    def draft(self) -> DistinctTs:
        """A copy to plan with: what is stamped on it changes nothing here until apply()."""
        copy = DistinctTs()
        copy.sent = dict(self.sent)
        return copy

    def apply(self, marks: Mapping[str, int], jumps_back: int = 0) -> None:
        """A publish planned on a draft is being sent: its last ts per device, and jumps."""
        self.sent.update(marks)
        self.jumps_back += jumps_back

    def rewind(self) -> None:
        self.sent = dict(self.confirmed)

    def confirm(self, marks: Mapping[str, int]) -> None:
        self.confirmed.update(marks)


class TelemetryPacker:
    """Collects JSON entries per device into one ``v1/gateway/telemetry`` payload."""

    def __init__(self, max_bytes: int, max_points: int | None, per_publish: int | None) -> None:
        self.max_bytes = max_bytes
        self.max_points = max_points
        self.per_publish = per_publish  # entries per publish; 1 when batching is off
        self._devices: dict[bytes, list[bytes]] = {}
        self._size = 2  # "{}"
        self.points = 0
        self.entries = 0

    def cost(self, name_json: bytes, entry: bytes) -> int:
        if name_json in self._devices:
            return len(entry) + 1
        return len(name_json) + 3 + len(entry) + (1 if self._devices else 0)

    def fits(self, name_json: bytes, entry: bytes, points: int) -> bool:
        if not self.entries:
            return True  # one entry always goes; its size was checked on its own
        if self.per_publish is not None and self.entries >= self.per_publish:
            return False
        if self.max_points is not None and self.points + points > self.max_points:
            return False
        return self._size + self.cost(name_json, entry) <= self.max_bytes

    def add(self, name_json: bytes, entry: bytes, points: int) -> None:
        self._size += self.cost(name_json, entry)
        self._devices.setdefault(name_json, []).append(entry)
        self.points += points
        self.entries += 1

    def devices(self) -> Iterable[bytes]:
        return self._devices.keys()

    def payload(self) -> bytes:
        body = b",".join(name + b":[" + b",".join(es) + b"]" for name, es in self._devices.items())
        return b"{" + body + b"}"

    def clear(self) -> None:
        self._devices.clear()
        self._size = 2
        self.points = self.entries = 0

    def __bool__(self) -> bool:
        return self.entries > 0


def entry(ts: int, values_json: bytes) -> bytes:
    """One telemetry entry from values already rendered (``dumps``) as JSON."""
    return b'{"ts":%d,"values":%s}' % (ts, values_json)


def record_is_telemetry(record: Record) -> bool:
    return record.kind in TELEMETRY_KINDS
