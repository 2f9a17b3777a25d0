"""A stand-in for a ThingsBoard server, for the tests: a client on a real Mosquitto.

No ThingsBoard server can run here, so this plays one from the server's documented
rules (../shared/RESEARCH.md, "ThingsBoard"; thingsboard/thingsboard
MqttTransportHandler, GatewaySessionHandler, JsonConverter). It never imports
``gateway``: it is the other side of the wire. It records per device what the
server would store, answers getSessionLimits and attribute requests, sends RPCs
and shared attribute updates, and lists every publish the server would refuse
or mishandle in ``violations``; a test fails when that list is not empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

# Topics a gateway session may publish on (MqttTransportHandler.processGatewayPublish
# and processDevicePublish); anything else is refused.
GATEWAY_TOPICS = {
    "v1/gateway/telemetry",
    "v1/gateway/attributes",
    "v1/gateway/connect",
    "v1/gateway/disconnect",
    "v1/gateway/rpc",
    "v1/gateway/attributes/request",
    "v1/gateway/claim",
}
ME_PREFIXES = (
    "v1/devices/me/rpc/request/",
    "v1/devices/me/rpc/response/",
    "v1/devices/me/attributes/request/",
)
ME_TOPICS = {"v1/devices/me/telemetry", "v1/devices/me/attributes"}
MAX_KEY = 255  # key dictionary column width
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1
TS_MIN, TS_MAX = 946_684_800_000, 32_503_680_000_000  # 2000 .. 3000: epoch milliseconds

NO_LIMITS = {"messages": "0:0,", "telemetryMessages": "0:0,", "telemetryDataPoints": "0:0,"}
DEFAULT_LIMITS: dict[str, Any] = {
    "maxPayloadSize": 65536,
    "maxInflightMessages": 100,
    "rateLimits": NO_LIMITS,
    "gatewayRateLimits": NO_LIMITS,
}


class _NotJson(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not JSON")


class _Bucket:
    """The server's greedy token bucket for one count:seconds pair."""

    def __init__(self, count: int, seconds: float) -> None:
        self.count, self.per_s = count, count / seconds
        self.level, self.at = float(count), time.monotonic()

    def spend(self, n: int) -> bool:
        now = time.monotonic()
        self.level = min(self.count, self.level + (now - self.at) * self.per_s)
        self.at = now
        if n > self.level + 1e-9:
            return False
        self.level -= n
        return True


def _buckets(spec: str) -> list[_Bucket]:
    out = []
    for pair in spec.split(","):
        if ":" in pair:
            count, seconds = pair.split(":")
            if int(count) and float(seconds):
                out.append(_Bucket(int(count), float(seconds)))
    return out


@dataclass
class Device:
    type: str | None = None  # from the connect that created it
    connected: bool = False
    connects: int = 0
    disconnects: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    attribute_updates: list[dict[str, Any]] = field(default_factory=list)  # each, as it came
    telemetry: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    by_ts: dict[int, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0


def _session_kept() -> Properties:
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    return props


class ThingsBoardChecker:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: dict[str, Any] | None = None,
        answer_limits: bool = True,
        username: str = "checker",
    ) -> None:
        self.host, self.port, self.username = host, port, username
        self.limits = DEFAULT_LIMITS if limits is None else limits
        self.answer_limits = answer_limits
        self.violations: list[str] = []
        self.devices: dict[str, Device] = {}
        self.shared: dict[str, dict[str, Any]] = {}
        self.me_telemetry: list[dict[str, Any]] = []
        self.me_attributes: dict[str, Any] = {}
        self.sessions = 0  # getSessionLimits requests: one per gateway connection
        self.publishes = 0
        self.telemetry_publishes = 0
        self.attribute_requests: list[dict[str, Any]] = []
        self._rpc_ids = itertools.count(1)
        self._rpc_waiting: dict[tuple[str, int], asyncio.Future[Any]] = {}
        self._me_waiting: dict[str, asyncio.Future[Any]] = {}
        self._outgoing: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()
        self._gw_buckets: dict[str, list[_Bucket]] = {}
        self._dev_buckets: dict[tuple[str, str], list[_Bucket]] = {}

    # ---- the rules ---------------------------------------------------------------

    def _bad(self, topic: str, why: str, payload: bytes = b"") -> None:
        self.violations.append(f"{topic}: {why}: {payload[:200]!r}")

    def _value_problem(self, key: Any, value: Any) -> str | None:
        if not isinstance(key, str) or not key.strip():
            return f"key {key!r} is empty"
        if len(key) > MAX_KEY:
            return f"key {key[:20]!r}... is longer than {MAX_KEY}"
        if isinstance(value, bool) or value is None or isinstance(value, (str, dict, list)):
            return None
        if isinstance(value, int):
            return None if LONG_MIN <= value <= LONG_MAX else f"{key}: big integer"
        if isinstance(value, float):
            return None if math.isfinite(value) else f"{key}: not a finite number"
        return f"{key}: unsupported value {value!r}"

    def _check_values(self, topic: str, values: Any, payload: bytes) -> bool:
        if not isinstance(values, dict):
            self._bad(topic, "values must be an object", payload)
            return False
        ok = True
        for k, v in values.items():
            problem = self._value_problem(k, v)
            if problem:
                self._bad(topic, problem, payload)
                ok = False
        return ok

    def _device_ready(self, topic: str, name: Any, payload: bytes) -> Device | None:
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_KEY:
            self._bad(topic, f"bad device name {name!r}", payload)
            return None
        dev = self.devices.get(name)
        if dev is None or not dev.connected:
            # the server would create it with type "default" (or act for a lost device)
            self._bad(topic, f"device {name!r} not connected in this session", payload)
            return None
        return dev

    def _rate(self, topic: str, payload: bytes, points: dict[str, int]) -> None:
        gw = self._gw_buckets
        spends = [(b, 1) for b in gw.get("messages", [])]
        if points:
            spends += [(b, 1) for b in gw.get("telemetryMessages", [])]
            spends += [(b, sum(points.values())) for b in gw.get("telemetryDataPoints", [])]
            dev_limits = self.limits.get("rateLimits") or {}
            for name, n in points.items():
                for kind, cost in (
                    ("messages", 1),
                    ("telemetryMessages", 1),
                    ("telemetryDataPoints", n),
                ):
                    key = (kind, name)
                    if key not in self._dev_buckets:
                        self._dev_buckets[key] = _buckets(str(dev_limits.get(kind, "")))
                    spends += [(b, cost) for b in self._dev_buckets[key]]
        for bucket, n in spends:
            if not bucket.spend(n):
                self._bad(
                    topic,
                    f"rate limit {bucket.count}/{bucket.count / bucket.per_s:g}s broken",
                    payload,
                )
                return

    def inspect(self, topic: str, payload: bytes) -> list[tuple[str, bytes]]:
        """Applies the server's rules to one publish; returns what the server answers."""
        self.publishes += 1
        size_limit = self.limits.get("maxPayloadSize")
        if isinstance(size_limit, int) and len(payload) > size_limit:
            self._bad(topic, f"{len(payload)} bytes, over maxPayloadSize {size_limit}", payload)
            return []
        if (
            topic not in GATEWAY_TOPICS
            and topic not in ME_TOPICS
            and not topic.startswith(ME_PREFIXES)
        ):
            self._bad(topic, "not a topic the server accepts", payload)
            return []
        try:
            body = json.loads(payload, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError) as exc:
            self._bad(topic, f"not JSON ({exc})", payload)
            return []
        handler = {
            "v1/gateway/connect": self._connect,
            "v1/gateway/disconnect": self._disconnect,
            "v1/gateway/telemetry": self._telemetry,
            "v1/gateway/attributes": self._attributes,
            "v1/gateway/attributes/request": self._attribute_request,
            "v1/gateway/rpc": self._rpc_reply,
            "v1/devices/me/telemetry": self._me_telemetry,
            "v1/devices/me/attributes": self._me_attributes,
        }.get(topic)
        if handler is not None:
            return handler(topic, body, payload)
        if topic.startswith("v1/devices/me/rpc/request/"):
            return self._me_rpc_request(topic, body, payload)
        if topic.startswith("v1/devices/me/rpc/response/"):
            fut = self._me_waiting.pop(topic.rsplit("/", 1)[1], None)
            if fut is None:
                self._bad(topic, "answer to no RPC", payload)
            elif not fut.done():
                fut.set_result(body)
        return []

    def _connect(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        if not isinstance(body, dict) or not isinstance(body.get("device"), str):
            self._bad(topic, 'connect needs {"device": "<name>"}', payload)
            return []
        name, kind = body["device"], body.get("type")
        if (
            not name.strip()
            or len(name) > MAX_KEY
            or (kind is not None and not isinstance(kind, str))
        ):
            self._bad(topic, "bad device name or type", payload)
            return []
        self._rate(topic, payload, {})
        dev = self.devices.setdefault(name, Device())
        if dev.type is None:
            dev.type = kind or "default"
        dev.connected = True
        dev.connects += 1
        return []

    def _disconnect(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        if not isinstance(body, dict):
            self._bad(topic, "disconnect must be an object", payload)
            return []
        dev = self._device_ready(topic, body.get("device"), payload)
        if dev is not None:
            self._rate(topic, payload, {})
            dev.connected = False
            dev.disconnects += 1
        return []

    def _telemetry(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        if not isinstance(body, dict):
            self._bad(topic, "telemetry must be an object of devices", payload)
            return []
        points: dict[str, int] = {}
        for name, entries in body.items():
            if not isinstance(entries, list):
                self._bad(topic, f"device {name!r}: value must be an array", payload)
                continue
            dev = self._device_ready(topic, name, payload)
            if dev is None:
                continue
            for item in entries:
                ts, values = self._entry(topic, item, payload)
                if values is None:
                    continue
                points[name] = points.get(name, 0) + len(values)
                previous = dev.by_ts.get(ts)
                if previous is not None:
                    if previous != values:
                        self._bad(topic, f"{name}: ts {ts} overwrites an earlier entry", payload)
                    dev.duplicates += 1
                    continue
                dev.by_ts[ts] = values
                dev.telemetry.append((ts, values))
        self.telemetry_publishes += 1
        self._rate(topic, payload, points)
        return []

    def _entry(self, topic: str, item: Any, payload: bytes) -> tuple[int, dict[str, Any] | None]:
        if not isinstance(item, dict):
            self._bad(topic, "an entry must be an object", payload)
            return 0, None
        if "ts" in item and "values" in item:
            ts = item["ts"]
            if isinstance(ts, bool) or not isinstance(ts, int) or not TS_MIN <= ts <= TS_MAX:
                self._bad(topic, f"ts {ts!r} is not epoch milliseconds", payload)
                return 0, None
            values = item["values"]
        else:
            ts, values = int(time.time() * 1000), item
        if not self._check_values(topic, values, payload):
            return 0, None
        return ts, {k: v for k, v in values.items() if v is not None}

    def _attributes(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        if not isinstance(body, dict):
            self._bad(topic, "attributes must be an object of devices", payload)
            return []
        for name, values in body.items():
            if not isinstance(values, dict):
                self._bad(topic, f"device {name!r}: attributes must be an object", payload)
                continue
            dev = self._device_ready(topic, name, payload)
            if dev is not None and self._check_values(topic, values, payload):
                dev.attributes.update({k: v for k, v in values.items() if v is not None})
                dev.attribute_updates.append(values)
        self._rate(topic, payload, {})
        return []

    def _attribute_request(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        if not isinstance(body, dict) or not isinstance(body.get("id"), int):
            self._bad(topic, 'request needs an integer "id"', payload)
            return []
        dev = self._device_ready(topic, body.get("device"), payload)
        keys = body.get("keys", [body["key"]] if isinstance(body.get("key"), str) else None)
        if dev is None or not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            self._bad(topic, 'request needs "key" or "keys"', payload)
            return []
        self._rate(topic, payload, {})
        self.attribute_requests.append(body)
        name = body["device"]
        found = {k: self.shared[name][k] for k in keys if k in self.shared.get(name, {})}
        answer: dict[str, Any] = {"id": body["id"], "device": name}
        if len(found) == 1:
            answer["value"] = next(iter(found.values()))
        elif found:
            answer["values"] = found
        return [("v1/gateway/attributes/response", json.dumps(answer).encode())]

    def _rpc_reply(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        if not isinstance(body, dict) or not {"device", "id", "data"} <= set(body):
            self._bad(topic, 'an RPC reply is {"device", "id", "data"}', payload)
            return []
        fut = self._rpc_waiting.pop((body["device"], body["id"]), None)
        if fut is None:
            self._bad(topic, f"reply to no RPC ({body['device']!r}, {body['id']!r})", payload)
        elif not fut.done():
            fut.set_result(body["data"])
        self._rate(topic, payload, {})
        return []

    def _me_telemetry(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        items = body if isinstance(body, list) else [body]
        for item in items:
            _, values = self._entry(topic, item, payload)
            if values is not None:
                self.me_telemetry.append(values)
        self._rate(topic, payload, {})
        return []

    def _me_attributes(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        if self._check_values(topic, body, payload):
            self.me_attributes.update(body)
        self._rate(topic, payload, {})
        return []

    def _me_rpc_request(self, topic: str, body: Any, payload: bytes) -> list[tuple[str, bytes]]:
        rid = topic.rsplit("/", 1)[1]
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            self._bad(topic, 'an RPC request is {"method", "params"}', payload)
            return []
        if body["method"] != "getSessionLimits":
            return []
        # a new gateway connection: its devices must be connected again
        self.sessions += 1
        for dev in self.devices.values():
            dev.connected = False
        gw = self.limits.get("gatewayRateLimits") or {}
        self._gw_buckets = {k: _buckets(str(v)) for k, v in gw.items()}
        self._dev_buckets.clear()
        if not self.answer_limits:
            return []
        return [(f"v1/devices/me/rpc/response/{rid}", json.dumps(self.limits).encode())]

    # ---- the server's side of the conversation -------------------------------------

    async def rpc(self, device: str, method: str, params: Any = None, timeout: float = 30) -> Any:
        """A server-side RPC to a device (two-way): returns the gateway's "data"."""
        rid = next(self._rpc_ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._rpc_waiting[(device, rid)] = fut
        body = {"device": device, "data": {"id": rid, "method": method, "params": params}}
        await self._outgoing.put(("v1/gateway/rpc", json.dumps(body).encode()))
        return await asyncio.wait_for(fut, timeout)

    async def gateway_rpc(self, method: str, params: Any = None, timeout: float = 30) -> Any:
        rid = str(next(self._rpc_ids))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._me_waiting[rid] = fut
        body = {"method": method, "params": params}
        await self._outgoing.put((f"v1/devices/me/rpc/request/{rid}", json.dumps(body).encode()))
        return await asyncio.wait_for(fut, timeout)

    async def set_shared(self, device: str, **values: Any) -> None:
        """A shared attribute update, as the server pushes it to the gateway."""
        self.shared.setdefault(device, {}).update(values)
        body = {"device": device, "data": values}
        await self._outgoing.put(("v1/gateway/attributes", json.dumps(body).encode()))

    async def send_raw(self, topic: str, payload: bytes) -> None:
        await self._outgoing.put((topic, payload))

    # ---- the connection ----------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.ready.wait(), 10)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    self.host,
                    self.port,
                    username=self.username,
                    identifier="thingsboard-checker",
                    protocol=aiomqtt.ProtocolVersion.V5,
                    # the session (and what is queued for it) outlives a restart of the
                    # persistent broker: nothing the gateway sends is missed meanwhile
                    clean_start=False,
                    properties=_session_kept(),
                    max_queued_incoming_messages=0,
                ) as client:
                    # No Local: the server never hears its own RPCs and attribute pushes back
                    await client.subscribe("v1/#", options=SubscribeOptions(qos=1, noLocal=True))
                    self.ready.set()
                    sender = asyncio.create_task(self._send(client))
                    try:
                        async for m in client.messages:
                            for topic, body in self.inspect(str(m.topic), bytes(m.payload)):  # type: ignore[arg-type]
                                await client.publish(topic, body, qos=1)
                    finally:
                        sender.cancel()
            except aiomqtt.MqttError:
                self.ready.clear()
                await asyncio.sleep(0.1)

    async def _send(self, client: aiomqtt.Client) -> None:
        while True:
            topic, payload = await self._outgoing.get()
            await client.publish(topic, payload, qos=1)

    # ---- for assertions ------------------------------------------------------------

    def telemetry_of(self, device: str) -> list[tuple[int, dict[str, Any]]]:
        dev = self.devices.get(device)
        return [] if dev is None else dev.telemetry

    async def wait_for(self, predicate: Any, timeout: float = 60.0) -> None:
        """Hang guard only: fails the test if ``predicate`` is not true within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                seen = {k: len(d.telemetry) for k, d in self.devices.items()}
                raise AssertionError(
                    f"checker: timed out after {timeout} s; telemetry entries {seen}, "
                    f"{self.publishes} publishes, violations: {self.violations[:5]}"
                )
            await asyncio.sleep(0.1)
