"""The ThingsBoard bridge: every node a device behind the gateway's Gateway MQTT API.

What the server asks of the gateway (RPC, shared attributes) is handled in
``tb_rpc.py``; the topics are in ``tb_topics.py``.

Speaks the API itself over the project's MQTT session (docs/decisions.md says
why not the official SDK). Uplink, in outbox order per connection:

  v1/devices/me/rpc/request/<n>   getSessionLimits first; the answer sets size, window, limits
  v1/gateway/connect              before a device's first data, and again after a reconnect
  v1/gateway/attributes           client attributes: what the node is, online true/false
  v1/gateway/telemetry            events, heartbeats, logs: {"<device>": [{"ts", "values"}]}
  v1/gateway/disconnect           when the node is lost
  v1/devices/me/telemetry         the gateway's own health

Downlink: server RPC on v1/gateway/rpc goes through the command router and is
answered with the same id; shared attribute updates (and the answer to the
request made on connect) become node commands; RPC to the gateway itself on
v1/devices/me/rpc/request/+.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import itertools
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway import __version__
from gateway.commands import CommandRouter
from gateway.config import ThingsBoardSection, parse_rate_limits
from gateway.fields import dumps, loads, record_fields
from gateway.health import Health
from gateway.logs import RateLimitedLog
from gateway.model import Record, RecordKind, node_hex
from gateway.nodes import LiveNode, NodeRegistry
from gateway.protocol import Info, decode
from gateway.protocol.commands import BY_SHARED_ATTRIBUTE
from gateway.sinks.delivery import Delivery
from gateway.sinks.mqtt import LINK_ERRORS, Connection, MqttSession, Subscription
from gateway.sinks.ratelimit import RateLimit, acquire
from gateway.sinks.skip import Unrenderable
from gateway.sinks.tb_payload import (
    DistinctTs,
    TelemetryPacker,
    entry,
    flatten,
    node_attributes,
    record_is_telemetry,
    telemetry_values,
)
from gateway.sinks.tb_rpc import ServerRequests
from gateway.sinks.tb_topics import (
    ATTRIBUTES,
    ATTRIBUTES_REQUEST,
    ATTRIBUTES_RESPONSE,
    CONNECT,
    DISCONNECT,
    ME_ATTRIBUTES,
    ME_RPC_REQUEST,
    ME_RPC_RESPONSE,
    ME_TELEMETRY,
    RPC,
    TELEMETRY,
)

log = logging.getLogger(__name__)

# Only filters the server accepts (MqttTopics); No Local keeps our own publishes away
SUBSCRIPTIONS: Final = (
    Subscription(RPC, no_local=True),
    Subscription(ATTRIBUTES, no_local=True),
    Subscription(ATTRIBUTES_RESPONSE),
    Subscription(ME_RPC_REQUEST + "+", no_local=True),
    Subscription(ME_RPC_RESPONSE + "+", no_local=True),
)


@dataclass(slots=True)
class _Pub:
    """One planned publish and what its PUBACK confirms."""

    topic: str | None  # None: confirms records that produced nothing to send
    payload: bytes = b""
    upto: int | None = None
    count: int = 0
    marks: dict[str, int] = field(default_factory=dict)  # last ts per node in this publish
    points: dict[str, int] = field(default_factory=dict)  # values per device (telemetry)
    # what sending it changes in the sink (devices connected, requests awaited, ts sent):
    # run when the publish starts, so that planning changes nothing
    effects: list[Callable[[], None]] = field(default_factory=list)


@dataclass(slots=True)
class _Draft:
    """What a plan knows beyond the sink's state: its own connects, stamps and packing."""

    connected: set[str]
    ts: DistinctTs
    packer: TelemetryPacker
    marks: dict[str, int] = field(default_factory=dict)
    points: collections.Counter[str] = field(default_factory=collections.Counter)
    jumps_flushed: int = 0


class _Limits:
    """The publish budget from the configuration, and what the server states on connect."""

    def __init__(self, cfg: ThingsBoardSection) -> None:
        self._share = cfg.server_limits_share
        self.budget = RateLimit(parse_rate_limits(cfg.publish_budget))
        self.max_bytes = cfg.max_payload_bytes
        self.window = cfg.max_inflight
        self.messages = RateLimit(())
        self.telemetry = RateLimit(())
        self.points = RateLimit(())
        self._device_specs: dict[str, list[tuple[int, float]]] = {}
        self._device: dict[tuple[str, str], RateLimit] = {}
        self.max_points: int | None = None  # values per publish: the smallest data-point bucket
        self.stated: dict[str, Any] = {}

    def apply(self, answer: Mapping[str, Any]) -> None:
        """Takes the server's getSessionLimits answer; raises ValueError on a bad one."""
        size = answer.get("maxPayloadSize")
        if isinstance(size, int) and size > 0:
            # the size is of the whole MQTT message: leave room for the topic and header
            self.max_bytes = min(self.max_bytes, size - 64)
        inflight = answer.get("maxInflightMessages")
        if isinstance(inflight, int) and inflight > 0:
            self.window = min(self.window, inflight)
        gw = answer.get("gatewayRateLimits") or {}
        dev = answer.get("rateLimits") or {}
        if not isinstance(gw, Mapping) or not isinstance(dev, Mapping):
            raise ValueError("rateLimits and gatewayRateLimits must be objects")  # noqa: TRY004
        self.messages = RateLimit(parse_rate_limits(str(gw.get("messages", ""))), self._share)
        self.telemetry = RateLimit(
            parse_rate_limits(str(gw.get("telemetryMessages", ""))), self._share
        )
        self.points = RateLimit(
            parse_rate_limits(str(gw.get("telemetryDataPoints", ""))), self._share
        )
        self._device_specs = {
            k: parse_rate_limits(str(dev.get(k, "")))
            for k in ("messages", "telemetryMessages", "telemetryDataPoints")
        }
        self._device.clear()
        device_points = RateLimit(self._device_specs["telemetryDataPoints"], self._share)
        caps = [c for c in (self.points.capacity, device_points.capacity) if c is not None]
        self.max_points = min(caps, default=None)
        self.stated = dict(answer)

    def _per_device(self, kind: str, device: str) -> RateLimit:
        key = (kind, device)
        lim = self._device.get(key)
        if lim is None:
            lim = self._device[key] = RateLimit(self._device_specs.get(kind, ()), self._share)
        return lim

    def costs(self, pub: _Pub) -> list[tuple[RateLimit, int]]:
        out = [(self.budget, 1), (self.messages, 1)]
        if pub.topic == TELEMETRY:
            out.append((self.telemetry, 1))
            out.append((self.points, sum(pub.points.values())))
            for device, n in pub.points.items():
                out.append((self._per_device("messages", device), 1))
                out.append((self._per_device("telemetryMessages", device), 1))
                out.append((self._per_device("telemetryDataPoints", device), n))
        return out


class ThingsBoardSink:
    name = "thingsboard"

    def __init__(
        self,
        *,
        session: MqttSession,
        delivery: Delivery,
        cfg: ThingsBoardSection,
        gateway_id: str,
        router: CommandRouter,
        registry: NodeRegistry,
        health: Health,
        health_interval_s: float,
        bad_input: RateLimitedLog,
    ) -> None:
        self.session = session
        self.delivery = delivery
        self._cfg = cfg
        self._gw = gateway_id
        self._registry = registry
        self._health = health
        self._c = health.counters
        self._health_interval_s = health_interval_s
        self._bad = bad_input
        self._fields = frozenset(cfg.telemetry_fields)
        self._limits = _Limits(cfg)
        self._ts = DistinctTs()
        self._connected: set[str] = set()  # devices connected in this MQTT session
        self._names: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._limits_answer: tuple[str, asyncio.Future[Any]] | None = None
        self._requests = ServerRequests(
            router=router,
            registry=registry,
            health=health,
            allowed=list(cfg.commands),
            device=self.device,
            node_named=self._node_named,
            reply=self._reply,
            announce=self._announce_now,
        )
        self._unrenderable = Unrenderable(self.name, health, bad_input)

    def set_allowed_commands(self, names: list[str]) -> None:
        """[thingsboard] commands from a reloaded configuration (SIGHUP)."""
        self._requests.set_allowed(names)

    # ---- devices -------------------------------------------------------------------

    def device(self, node_id: int) -> str:
        """The node's ThingsBoard device name (from the template; unique per gateway)."""
        name = self._names.get(node_id)
        if name is not None:
            return name
        meta = self._registry.meta(node_id)
        hexid = node_hex(node_id)
        name = self._cfg.device_name.format(
            name=meta.name or hexid, id=hexid, group=meta.group or "", gateway=self._gw
        )
        if not name.strip() or len(name) > 255 or name in self._by_name:
            log.warning(
                "thingsboard: device name %r for node %s is empty, too long or taken; "
                "using %s (check [thingsboard].device_name and the node names)",
                name,
                hexid,
                hexid,
            )
            name = hexid
        self._names[node_id] = name
        self._by_name[name] = node_id
        return name

    def _node_named(self, device: Any) -> LiveNode | None:
        if not isinstance(device, str):
            return None
        if device not in self._by_name:
            for node in self._registry.all():
                self.device(node.node_id)
        node_id = self._by_name.get(device)
        return None if node_id is None else self._registry.get(node_id)

    def _announce(self, node_id: int, *, online: bool | None = None) -> list[_Pub]:
        """connect, client attributes, and a request for the shared attributes."""
        name = self.device(node_id)
        node = self._registry.get(node_id)
        attrs = node_attributes(
            node=node_hex(node_id),
            gateway=self._gw,
            transport=node.transport if node else "",
            online=(node.online if node else False) if online is None else online,
            info=node.info if node else None,
        )
        connect = dumps({"device": name, "type": self._cfg.device_profile})
        return [
            _Pub(CONNECT, connect, effects=[functools.partial(self._connected.add, name)]),
            _Pub(ATTRIBUTES, dumps({name: attrs})),
            *self._attribute_requests(name),
        ]

    def _attribute_requests(self, name: str) -> list[_Pub]:
        """One request per shared key: an answer holding one value does not name its key."""
        out = []
        for key in BY_SHARED_ATTRIBUTE:
            rid = next(self._ids)
            body = {"id": rid, "device": name, "client": False, "key": key}
            awaited = functools.partial(self._requests.awaiting.__setitem__, rid, key)
            out.append(_Pub(ATTRIBUTES_REQUEST, dumps(body), effects=[awaited]))
        return out

    # ---- run -----------------------------------------------------------------------

    async def run(self) -> None:
        await self.delivery.start()
        self._ts = DistinctTs(self.delivery.state)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.delivery.persist_forever(), name="thingsboard persist")
            tg.create_task(
                self.session.run(SUBSCRIPTIONS, self._connected_run, self._message),
                name="thingsboard session",
            )

    async def close(self) -> None:
        await self.delivery.flush()

    async def started(self) -> None:
        await self.session.first_attempt_done.wait()

    async def _connected_run(self, conn: Connection) -> None:
        self._connected.clear()
        self._ts.rewind()
        self._limits = _Limits(self._cfg)
        await self._session_limits(conn)
        for node in self._registry.all():
            if node.online:
                await self._announce_now(conn, node.node_id)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publish_health(conn), name="thingsboard health")
            tg.create_task(self._deliver(conn), name="thingsboard deliver")

    async def _session_limits(self, conn: Connection) -> None:
        """Asks the server for its limits, as the official clients do on every connect."""
        rid = str(next(self._ids))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._limits_answer = (rid, fut)
        body = dumps({"method": "getSessionLimits", "params": {}})
        await self._send(conn, _Pub(ME_RPC_REQUEST + rid, body))
        try:
            answer = await asyncio.wait_for(fut, self._cfg.session_limits_wait_s)
        except TimeoutError:
            log.info(
                "thingsboard: no answer to getSessionLimits within %.0f s; using the "
                "configured payload size and publish budget",
                self._cfg.session_limits_wait_s,
            )
            return
        finally:
            self._limits_answer = None
        try:
            if not isinstance(answer, Mapping):
                raise ValueError("the answer is not an object")  # noqa: TRY301, TRY004
            self._limits.apply(answer)
        except ValueError as exc:
            self._c["thingsboard_bad_limits"] += 1
            log.warning("thingsboard: ignoring the server's session limits (%s): %r", exc, answer)
            self._limits = _Limits(self._cfg)
            return
        log.info(
            "thingsboard: session limits: payload %d bytes, %d in flight, %s",
            self._limits.max_bytes,
            self._limits.window,
            answer.get("gatewayRateLimits"),
        )

    async def _start(self, pub: _Pub) -> None:
        """Before any publish: waits for its share of every rate limit, applies its effects."""
        if pub.topic is not None:
            await acquire(self._limits.costs(pub))
        for effect in pub.effects:
            effect()

    async def _send(self, conn: Connection, pub: _Pub) -> None:
        """Publishes a control message and waits for the PUBACK."""
        await self._start(pub)
        if pub.topic is not None:
            await conn.publish(pub.topic, pub.payload)
            self._c["thingsboard_publishes"] += 1

    async def _publish_health(self, conn: Connection) -> None:
        attrs = {"gateway": self._gw, "version": __version__, "started": self._health.started_ms}
        await self._send(conn, _Pub(ME_ATTRIBUTES, dumps(attrs)))
        while True:
            values = flatten(self._health.payload())
            await self._send(conn, _Pub(ME_TELEMETRY, dumps(values)))
            await asyncio.sleep(self._health_interval_s)

    # ---- delivery ------------------------------------------------------------------

    async def _deliver(self, conn: Connection) -> None:
        """Publishes in outbox order with up to ``window`` in flight; confirms in order."""
        after = self.delivery.confirmed
        with conn.records(self._limits.window) as window:
            while True:
                records = await self.delivery.next_batch(after)
                after = records[-1].id
                for pub in self._plan(records):
                    await self._start(pub)
                    await window.publish(pub.topic, pub.payload, functools.partial(self._done, pub))

    def _done(self, pub: _Pub) -> None:
        """Runs once the PUBACK for ``pub`` and for every earlier publish is in."""
        if pub.topic is not None:
            self._c["thingsboard_publishes"] += 1
        if pub.marks:
            self._ts.confirm(pub.marks)
        if pub.upto is not None:
            self.delivery.confirm(pub.upto, pub.count, pub.marks)

    def _plan(self, records: list[Record]) -> list[_Pub]:
        """Turns records into publishes, in order; each carries the records it confirms.

        Pure: the sink's state changes only as each publish starts (``_Pub.effects``).
        """
        lim = self._limits
        draft = _Draft(
            set(self._connected),
            self._ts.draft(),
            TelemetryPacker(lim.max_bytes, lim.max_points, None if self._cfg.batching else 1),
        )
        out: list[_Pub] = []
        # the last record id not yet confirmed by a publish (0: none), and how many of
        # the records up to it were delivered (those passed over are not)
        carry: list[int] = [0, 0]

        def take(pub: _Pub) -> _Pub:
            if carry[0]:
                pub.upto, pub.count = carry
                carry[:] = [0, 0]
            return pub

        def flush() -> None:
            if not draft.packer:
                return
            marks, jumps = dict(draft.marks), draft.ts.jumps_back - draft.jumps_flushed
            pub = _Pub(TELEMETRY, draft.packer.payload(), marks=marks, points=dict(draft.points))
            pub.effects.append(functools.partial(self._ts.apply, marks, jumps))
            out.append(take(pub))
            draft.packer.clear()
            draft.marks.clear()
            draft.points.clear()
            draft.jumps_flushed = draft.ts.jumps_back

        for r in records:
            name = self.device(r.node_id)
            if name not in draft.connected:
                flush()
                out.extend(self._announce(r.node_id))
                draft.connected.add(name)
            if record_is_telemetry(r):
                values = self._unrenderable.render(r, self._values_json)
                if values is not None:
                    self._pack(r, name, values, draft, flush)
                carry[:] = [r.id, carry[1] + (values is not None)]
                continue
            pubs = self._unrenderable.render(r, functools.partial(self._control, name=name))
            if pubs is None:
                carry[0] = r.id
                continue
            if any(p.topic == DISCONNECT for p in pubs):
                draft.connected.discard(name)
            flush()
            carry[:] = [r.id, carry[1] + 1]
            out.extend(take(p) if i == 0 else p for i, p in enumerate(pubs))
        flush()
        if carry[0]:
            out.append(take(_Pub(None)))
        return out

    def _values_json(self, r: Record) -> tuple[bytes, int]:
        """The record's telemetry values as JSON, and how many (0: nothing to send)."""
        values = telemetry_values(
            record_fields(r, self._gw, self._registry.meta(r.node_id)), self._fields
        )
        return dumps(values), len(values)

    def _pack(
        self,
        r: Record,
        name: str,
        values: tuple[bytes, int],
        draft: _Draft,
        flush: Callable[[], None],
    ) -> None:
        values_json, n_values = values
        if not n_values:
            return
        packer = draft.packer
        key = node_hex(r.node_id)
        ts = draft.ts.stamp(key, r.ts_ms)
        text, name_json = entry(ts, values_json), dumps(name)
        if len(text) + len(name_json) + 5 > packer.max_bytes:
            self._c["thingsboard_oversize"] += 1
            log.warning(
                "thingsboard: %s record %d of %s is %d bytes, over the server's payload "
                "size; not sent (drop telemetry fields such as window to send it)",
                r.kind.value,
                r.id,
                key,
                len(text),
            )
            return
        if not packer.fits(name_json, text, n_values):
            flush()
        packer.add(name_json, text, n_values)
        draft.marks[key] = ts
        draft.points[name] += n_values

    def _control(self, r: Record, *, name: str) -> list[_Pub]:
        """INFO and STATUS records: attributes, and connect/disconnect with online state."""
        if r.kind == RecordKind.INFO:
            # INFO says what the node is; STATUS records say whether it is there
            attrs = node_attributes(
                node=node_hex(r.node_id), gateway=self._gw, transport=r.transport, info=_info(r)
            )
            return [_Pub(ATTRIBUTES, dumps({name: attrs}))]
        status = json.loads(r.data)
        if status.get("online"):
            online = _Pub(ATTRIBUTES, dumps({name: {"online": True}}))
            return [online, *self._attribute_requests(name)]
        reason = str(status.get("reason", ""))
        gone = functools.partial(self._connected.discard, name)
        return [
            _Pub(ATTRIBUTES, dumps({name: {"online": False, "offline_reason": reason}})),
            _Pub(DISCONNECT, dumps({"device": name}), effects=[gone]),
        ]

    # ---- downlink ------------------------------------------------------------------

    async def _message(self, conn: Connection, topic: str, payload: bytes) -> None:
        try:
            body = loads(payload)
        except (ValueError, TypeError) as exc:
            self._c["thingsboard_bad_json"] += 1
            self._bad.warning(
                "thingsboard:json", "thingsboard: %s: payload is not JSON: %s", topic, exc
            )
            return
        if topic.startswith(ME_RPC_RESPONSE):
            pending = self._limits_answer
            if pending and topic == ME_RPC_RESPONSE + pending[0] and not pending[1].done():
                pending[1].set_result(body)
            return
        if not self._requests.handle(conn, topic, body):
            self._c["thingsboard_ignored"] += 1
            log.debug("thingsboard: ignored a message on %s: %.200s", topic, body)

    async def _reply(self, conn: Connection, topic: str, body: Any) -> None:
        try:
            await self._send(conn, _Pub(topic, dumps(body)))
        except LINK_ERRORS as exc:
            log.info("thingsboard: answer on %s not sent: %s", topic, exc)

    async def _announce_now(self, conn: Connection, node_id: int) -> None:
        for pub in self._announce(node_id):
            await self._send(conn, pub)

    def health(self) -> dict[str, Any]:
        return {
            **self.session.health(),
            "delivered": self.delivery.delivered,
            "devices_connected": len(self._connected),
            "ts_jumps_back": self._ts.jumps_back,
            "max_payload_bytes": self._limits.max_bytes,
        }


def _info(r: Record) -> Info | None:
    body = decode(r.data).body
    return body if isinstance(body, Info) else None
