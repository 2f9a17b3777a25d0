"""What the ThingsBoard server asks of the gateway: RPC to nodes and to the gateway itself,
and shared attributes that become node commands (docs/thingsboard.md, "Downlink").

Every request is answered (the router always returns a result); each runs in its own
task, so a slow node never holds up the bridge's message loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

from gateway.commands import CommandRouter
from gateway.health import Health
from gateway.model import CommandRequest, CommandResult, node_hex
from gateway.nodes import LiveNode, NodeRegistry
from gateway.protocol.commands import BY_SHARED_ATTRIBUTE
from gateway.sinks.mqtt_link import Connection
from gateway.sinks.tb_payload import node_attributes
from gateway.sinks.tb_topics import (
    ATTRIBUTES,
    ATTRIBUTES_RESPONSE,
    ME_RPC_REQUEST,
    ME_RPC_RESPONSE,
    RPC,
)

log = logging.getLogger(__name__)

GATEWAY_METHODS: Final = ("getStatus", "listNodes", "reconnectNode", "forgetNode")

Reply = Callable[[Connection, str, Any], Awaitable[None]]
Announce = Callable[[Connection, int], Awaitable[None]]


class ServerRequests:
    """Handles the server's messages on the bridge's connection."""

    def __init__(
        self,
        *,
        router: CommandRouter,
        registry: NodeRegistry,
        health: Health,
        allowed: list[str],
        device: Callable[[int], str],
        node_named: Callable[[Any], LiveNode | None],
        reply: Reply,
        announce: Announce,
    ) -> None:
        self._router = router
        self._registry = registry
        self._health = health
        self._c = health.counters
        self._allowed = allowed
        self._device = device
        self._node_named = node_named
        self._reply = reply
        self._announce = announce
        self.awaiting: dict[int, str] = {}  # attribute request id -> the shared key asked for
        self._tasks: set[asyncio.Task[None]] = set()

    def set_allowed(self, names: list[str]) -> None:
        self._allowed[:] = names

    def handle(self, conn: Connection, topic: str, body: Any) -> bool:
        """Starts what ``body`` on ``topic`` asks for; False when it is none of this."""
        if topic == RPC and _is_server_rpc(body):
            self._spawn(self._node_rpc(conn, body["device"], body["data"]))
        elif topic == ATTRIBUTES and _is_shared_update(body):
            self._spawn(self._apply_shared(body["device"], body["data"]))
        elif topic == ATTRIBUTES_RESPONSE and isinstance(body, dict):
            rid = body.get("id")
            key = self.awaiting.pop(rid, None) if isinstance(rid, int) else None
            self._spawn(self._apply_shared(body.get("device"), _response_values(body, key)))
        elif (
            topic.startswith(ME_RPC_REQUEST)
            and isinstance(body, dict)
            # our own request, back from a 3.1.1 broker (no No Local)
            and body.get("method") != "getSessionLimits"
        ):
            rid = topic.removeprefix(ME_RPC_REQUEST)
            self._spawn(self._gateway_rpc(conn, rid, body))
        else:
            return False
        return True

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # keep a reference until done, or it may be collected
        task.add_done_callback(self._tasks.discard)

    async def _node_rpc(self, conn: Connection, device: str, data: dict[str, Any]) -> None:
        self._c["thingsboard_rpc"] += 1
        node = self._node_named(device)
        rid = data.get("id")
        if node is None:
            result = CommandResult(
                rid, False, "unknown_node", error=f"no node for device {device!r}"
            )
        else:
            req = CommandRequest(rid, str(data.get("method")), data.get("params"))
            result = await self._router.request(node.node_id, req, self._allowed)
        await self._reply(conn, RPC, {"device": device, "id": rid, "data": result.as_json()})

    async def _apply_shared(self, device: Any, values: Mapping[str, Any]) -> None:
        node = self._node_named(device)
        wanted = {k: v for k, v in values.items() if k in BY_SHARED_ATTRIBUTE}
        if node is None or not wanted:
            return
        current = node_attributes(node="", gateway="", transport="", online=False, info=node.info)
        for key, value in wanted.items():
            if current.get(key) == value:
                continue  # the node already runs with it
            spec = BY_SHARED_ATTRIBUTE[key]
            result = await self._router.request(
                node.node_id, CommandRequest(None, spec.name, {spec.param: value}), self._allowed
            )
            if result.ok:
                self._c["thingsboard_shared_applied"] += 1
                log.info("thingsboard: %s: %s = %r applied", device, key, value)
            else:
                self._c["thingsboard_shared_failed"] += 1
                log.info(
                    "thingsboard: %s: %s = %r not applied (%s: %s)%s",
                    device,
                    key,
                    value,
                    result.status,
                    result.error,
                    "; it is requested again when the node is back"
                    if result.status == "offline"
                    else "",
                )

    async def _gateway_rpc(self, conn: Connection, rid: str, body: dict[str, Any]) -> None:
        method, params = body.get("method"), body.get("params")
        data: Any
        if method == "getStatus":
            data = self._health.payload()
        elif method == "listNodes":
            data = [
                {
                    "node": node_hex(n.node_id),
                    "device": self._device(n.node_id),
                    "online": n.online,
                    "transport": n.transport,
                }
                for n in self._registry.all()
            ]
        elif method in ("reconnectNode", "forgetNode"):
            target = params.get("device") if isinstance(params, dict) else params
            node = self._node_named(target)
            if node is None:
                data = {"ok": False, "error": f"no node for device {target!r}"}
            elif method == "reconnectNode":
                await self._announce(conn, node.node_id)
                data = {"ok": True}
            else:
                result = (await self._router.forget_node(node.node_id)).as_json()
                data = {k: v for k, v in result.items() if k != "id"}
        else:
            data = {"error": f"unknown method {method!r}; use {', '.join(GATEWAY_METHODS)}"}
        await self._reply(conn, ME_RPC_RESPONSE + rid, data)


def _is_server_rpc(body: Any) -> bool:
    # our own replies ({"device", "id", "data"}) come back on 3.1.1, which has no No Local
    return (
        isinstance(body, dict)
        and isinstance(body.get("device"), str)
        and isinstance(body.get("data"), dict)
        and "method" in body["data"]
    )


def _is_shared_update(body: Any) -> bool:
    return (
        isinstance(body, dict)
        and set(body) == {"device", "data"}
        and isinstance(body["data"], dict)
    )


def _response_values(body: dict[str, Any], key: str | None) -> dict[str, Any]:
    """``{"values": {...}}``, or ``{"value": v}`` for the one key that was asked for."""
    values = body.get("values")
    if isinstance(values, dict):
        return values
    if key is not None and "value" in body:
        return {key: body["value"]}
    return {}
