"""Routes ``{id, method, params}`` requests from any sink to a node, and its answer back.

Every request ends in a :class:`CommandResult`: the node's COMMAND_ACK, or an
error result for a refused command, bad parameters, an unknown or offline node,
a failed send, or a timeout. Never silence.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterable

from gateway import downlink
from gateway.errors import OutboxFullError
from gateway.health import Health
from gateway.model import CommandRequest, CommandResult, node_hex
from gateway.nodes import NodeRegistry
from gateway.protocol import Command, CommandAck, Status
from gateway.protocol.commands import BY_NAME, GATEWAY_NAMES, NAMES

log = logging.getLogger(__name__)


class CommandRouter:
    def __init__(self, registry: NodeRegistry, health: Health, timeout_s: float = 8.0) -> None:
        self._registry = registry
        self._timeout_s = timeout_s
        self._c = health.counters
        self._ids = itertools.cycle(range(1, 0x10000))
        self._pending: dict[tuple[int, int], asyncio.Future[CommandAck]] = {}
        # what clears a node's stored state (the pipeline's Ingest.forget), set at start
        self.forget: Callable[[int], Awaitable[bool]] | None = None

    def resolve(self, node_id: int, ack: CommandAck) -> None:
        """Called by the pipeline for every COMMAND_ACK a node sends."""
        fut = self._pending.get((node_id, ack.request_id))
        if fut is None or fut.done():
            self._c["command_acks_unmatched"] += 1
            return
        fut.set_result(ack)

    def _request_id(self, node_id: int) -> int:
        for _ in range(0x10000):
            rid = next(self._ids)
            if (node_id, rid) not in self._pending:
                return rid
        raise RuntimeError("65535 commands in flight to one node")

    async def request(
        self, node_id: int, req: CommandRequest, allowed: Iterable[str]
    ) -> CommandResult:
        """Sends one command and waits for the node's answer (or an error result)."""
        self._c["commands"] += 1
        result = await self._request(node_id, req, allowed)
        if not result.ok:
            self._c[f"command_errors_{result.status}"] += 1
        return result

    async def forget_node(self, node_id: int, request_id: object = None) -> CommandResult:
        """Clears a node's stored state (an operator's action, never sent to the node)."""
        if self.forget is None:
            return CommandResult(request_id, False, "refused", error="the pipeline is not running")
        try:
            known = await self.forget(node_id)
        except OutboxFullError as exc:
            return CommandResult(request_id, False, "failed", error=str(exc))
        if not known:
            return CommandResult(
                request_id, False, "unknown_node", error=f"no node {node_hex(node_id)}"
            )
        return CommandResult(request_id, True, "ok")

    async def _request(
        self, node_id: int, req: CommandRequest, allowed: Iterable[str]
    ) -> CommandResult:
        spec = BY_NAME.get(req.method)
        if spec is None and req.method not in GATEWAY_NAMES:
            known = ", ".join((*NAMES, *GATEWAY_NAMES))
            return CommandResult(req.id, False, "unknown_method", error=f"use one of: {known}")
        # a node's own command list limits what is sent to it, not the gateway's methods
        node_refuses = spec is not None and not self._registry.allows(node_id, req.method)
        if req.method not in set(allowed) or node_refuses:
            return CommandResult(
                req.id, False, "refused", error=f"{req.method} is not allowed for this sink or node"
            )
        if spec is None:
            return await self.forget_node(node_id, req.id)
        node = self._registry.get(node_id)
        if node is None:
            return CommandResult(
                req.id, False, "unknown_node", error=f"no node {node_hex(node_id)}"
            )
        if not node.online or node.downlink is None:
            return CommandResult(req.id, False, "offline", error="the node is offline")
        try:
            args = spec.encode(req.params)
        except (ValueError, TypeError) as exc:
            return CommandResult(req.id, False, "bad_params", error=str(exc))
        rid = self._request_id(node_id)
        fut: asyncio.Future[CommandAck] = asyncio.get_running_loop().create_future()
        self._pending[(node_id, rid)] = fut
        try:
            await downlink.send(node, Command(rid, spec.code, args), downlink.reserve(node))
            ack = await asyncio.wait_for(fut, self._timeout_s)
        except TimeoutError:
            return CommandResult(
                req.id, False, "timeout", error=f"no answer within {self._timeout_s:g} s"
            )
        except OSError as exc:
            return CommandResult(req.id, False, "send_failed", error=str(exc))
        finally:
            self._pending.pop((node_id, rid), None)
        try:
            status = Status(ack.status).name.lower()
        except ValueError:
            status = f"status_{ack.status}"
        return CommandResult(
            req.id,
            ack.status == Status.OK,
            status,
            result=ack.result.hex() if ack.result else None,
            error=None if ack.status == Status.OK else f"the node answered {status}",
        )
