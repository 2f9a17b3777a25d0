"""Domain objects shared by sources, the outbox and sinks. Wire structs stay in protocol/."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NewType

from gateway.protocol import Advert, Message
from gateway.protocol.value import value

NodeId = NewType("NodeId", int)
"""A node's 64-bit id. Its text form (:func:`node_hex`) is 16 lowercase hex digits."""

_NODE_HEX: Final = re.compile(r"^[0-9a-f]{16}$")


def node_hex(node: int) -> str:
    return f"{node:016x}"


def parse_node_id(text: str) -> NodeId:
    """Parses the 16-hex-digit form; raises ValueError with the reason."""
    if not _NODE_HEX.match(text):
        raise ValueError(f"node id {text!r} is not 16 lowercase hex digits")
    value = int(text, 16)
    if value == 0:
        raise ValueError("node id 0 is reserved")
    return NodeId(value)


class RecordKind(StrEnum):
    """What an outbox row holds; also the last segment of its MQTT topic."""

    EVENT = "event"
    HEARTBEAT = "heartbeat"
    INFO = "info"
    LOG = "log"
    STATUS = "status"


ADVERT_TRANSPORT: Final = "ble-adv"
"""The transport of messages made from BLE advertisements: no ACK, no uptime."""

Downlink = Callable[[bytes], Awaitable[None]]
"""Sends one encoded message to a node over the transport it came from."""


@value
class Inbound:
    """A decoded message as a source hands it to the pipeline."""

    message: Message
    transport: str  # "serial", "ble", "ble-adv", "sim"
    port: str  # which device or adapter
    arrival_ms: int  # wall clock, ms
    downlink: Downlink | None  # None: the node cannot receive (advertisements)
    advert: Advert | None = None  # what ``message`` was made from (docs/protocol.md 6.3)
    rssi: int | None = None  # dBm of the node's last advertisement (BLE)


@value
class Record:
    """One outbox row: what every sink maps from (docs/topics.md)."""

    id: int
    kind: RecordKind
    node_id: int
    boot_id: int
    seq: int
    uptime_ms: int
    ts_ms: int
    clock_synced: bool
    transport: str
    data: bytes  # the wire message; for STATUS, UTF-8 JSON
    epoch: int = 0  # the node's dedup epoch (docs/protocol.md 2.1)
    rssi: int | None = None  # dBm of the node's last advertisement, for BLE nodes
    verdict: str | None = None  # JSON: the gateway's verdict on an EVENT (docs/verification.md)


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """``{id, method, params}``: the shape ThingsBoard RPC and the Node-RED cmd topic share."""

    id: Any
    method: str
    params: Any = None


@dataclass(frozen=True, slots=True)
class CommandResult:
    id: Any
    ok: bool
    status: str  # "ok", or an error code: timeout, offline, unknown_node, refused, ...
    result: Any = None
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "ok": self.ok, "status": self.status}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        return out
