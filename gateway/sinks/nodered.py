"""The MQTT bridge for Node-RED: one message per record, plain topics (docs/topics.md).

<prefix>/<gateway>/status                 retained, last will: gateway health
<prefix>/<gateway>/<node>/event|heartbeat|log
<prefix>/<gateway>/<node>/info            retained
<prefix>/<gateway>/<node>/status          retained: online / offline
<prefix>/<gateway>/<node>/cmd             in:  {"id", "method", "params"}
<prefix>/<gateway>/<node>/cmd/ack         out: {"id", "ok", "status", "result"|"error"}
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from gateway.commands import CommandRouter
from gateway.fields import NodeMeta, dumps, loads, record_fields
from gateway.health import Health
from gateway.logs import RateLimitedLog
from gateway.model import CommandRequest, CommandResult, Record, RecordKind, parse_node_id
from gateway.sinks.delivery import Delivery
from gateway.sinks.mqtt import LINK_ERRORS, Connection, MqttSession, Subscription, Will
from gateway.sinks.skip import Unrenderable

log = logging.getLogger(__name__)

_RETAINED = frozenset({RecordKind.INFO, RecordKind.STATUS})


class NodeRedSink:
    name = "mqtt"

    def __init__(
        self,
        *,
        session: MqttSession,
        delivery: Delivery,
        gateway_id: str,
        prefix: str,
        allowed_commands: list[str],
        router: CommandRouter,
        meta: Callable[[int], NodeMeta],
        health: Health,
        health_interval_s: float,
        bad_input: RateLimitedLog,
    ) -> None:
        self.session = session
        self.delivery = delivery
        self._gw = gateway_id
        self._base = f"{prefix}/{gateway_id}"
        self._allowed = allowed_commands
        self._router = router
        self._meta = meta
        self._health = health
        self._health_interval_s = health_interval_s
        self._bad = bad_input
        self._window = session.link.max_inflight
        self._unrenderable = Unrenderable(self.name, health, bad_input)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def status_topic(self) -> str:
        return f"{self._base}/status"

    def will(self) -> Will:
        return Will(self.status_topic, dumps(self._health.offline_payload()))

    def topic(self, record: Record) -> str:
        return f"{self._base}/{record.node_id:016x}/{record.kind.value}"

    def payload(self, record: Record) -> bytes:
        fields = record_fields(record, self._gw, self._meta(record.node_id))
        return dumps(fields)

    async def run(self) -> None:
        await self.delivery.start()
        subs = [Subscription(f"{self._base}/+/cmd")]
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.delivery.persist_forever(), name="mqtt persist")
            tg.create_task(
                self.session.run(subs, self._connected, self._message), name="mqtt session"
            )

    async def close(self) -> None:
        await self.delivery.flush()

    async def started(self) -> None:
        await self.session.first_attempt_done.wait()

    # ---- connected ---------------------------------------------------------------

    async def _connected(self, conn: Connection) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._publish_health(conn), name="mqtt health")
            tg.create_task(self._deliver(conn), name="mqtt deliver")

    async def _publish_health(self, conn: Connection) -> None:
        while True:
            body = dumps(self._health.payload())
            await conn.publish(self.status_topic, body, retain=True)
            await asyncio.sleep(self._health_interval_s)

    async def _deliver(self, conn: Connection) -> None:
        """One message per record, up to ``window`` in flight, confirmed in order."""
        after = self.delivery.confirmed
        confirm = self.delivery.confirm
        with conn.records(self._window) as pub:
            while True:
                records = await self.delivery.next_batch(after)
                after = records[-1].id
                for r in records:
                    payload = self._unrenderable.render(r, self.payload)
                    if payload is None:  # passed over in order, not counted as delivered
                        await pub.publish(None, b"", functools.partial(confirm, r.id, 0))
                        continue
                    await pub.publish(
                        self.topic(r),
                        payload,
                        functools.partial(confirm, r.id, 1),
                        retain=r.kind in _RETAINED,
                    )

    # ---- commands ------------------------------------------------------------------

    def set_allowed_commands(self, names: list[str]) -> None:
        """[mqtt] commands from a reloaded configuration (SIGHUP)."""
        self._allowed[:] = names

    async def _message(self, conn: Connection, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        node_text = parts[-2] if len(parts) >= 2 else ""
        task = asyncio.create_task(self._command(conn, node_text, payload))
        self._tasks.add(task)  # keep a reference until done, or it may be collected
        task.add_done_callback(self._tasks.discard)

    async def _command(self, conn: Connection, node_text: str, raw: bytes) -> None:
        result = await self._handle(node_text, raw)
        topic = f"{self._base}/{node_text}/cmd/ack"
        try:
            await conn.publish(topic, dumps(result.as_json()))
        except LINK_ERRORS as exc:
            log.info("mqtt: command answer for %s not sent: %s", node_text, exc)

    async def _handle(self, node_text: str, raw: bytes) -> CommandResult:
        try:
            node_id = parse_node_id(node_text)
        except ValueError as exc:
            return CommandResult(None, False, "bad_request", error=str(exc))
        try:
            body = loads(raw)
        except (ValueError, TypeError) as exc:
            self._health.counters["commands_bad_json"] += 1
            self._bad.warning(
                "mqtt:cmd-json", "mqtt: command for %s is not JSON: %s", node_text, exc
            )
            return CommandResult(None, False, "bad_request", error=f"payload is not JSON: {exc}")
        if not isinstance(body, dict) or not isinstance(body.get("method"), str):
            return CommandResult(
                body.get("id") if isinstance(body, dict) else None,
                False,
                "bad_request",
                error='send {"id": ..., "method": "...", "params": {...}}',
            )
        req = CommandRequest(body.get("id"), body["method"], body.get("params"))
        return await self._router.request(node_id, req, self._allowed)

    def health(self) -> dict[str, Any]:
        return {**self.session.health(), "delivered": self.delivery.delivered}
