"""One asyncio MQTT session with its own reconnect loop.

Both the Node-RED bridge and the ThingsBoard bridge run on this. The session
owns the connection (``mqtt_v5`` for ``protocol = "5"``, ``mqtt_paho`` for 3.1.1,
both behind ``mqtt_link.Connection``); the bridge supplies what to do once
connected (``on_connect``, which runs until the connection ends) and how to
handle an incoming message. A refused login waits the longest backoff; the first
failure of a kind logs a WARNING, repeats log at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import aiomqtt

from gateway.backoff import backoff_s
from gateway.logs import RateLimitedLog
from gateway.sinks import mqtt_paho, mqtt_v5
from gateway.sinks.mqtt5_wire import PACKET_TOO_LARGE, WireError
from gateway.sinks.mqtt_link import Connection, MqttLink, Subscription, Will
from gateway.sinks.mqtt_paho import client_log, quiet_cancelled_connects

__all__ = [
    "LINK_ERRORS",
    "Connection",
    "MqttLink",
    "MqttSession",
    "Subscription",
    "Will",
    "auth_refused",
    "client_log",
    "quiet_cancelled_connects",
]

log = logging.getLogger(__name__)

# what a lost or refused connection raises, on either path
LINK_ERRORS: Final = (aiomqtt.MqttError, WireError)

# CONNACK codes that mean "your credentials are wrong" (3.1.1 and 5)
_AUTH_CODES: Final = {4, 5, 134, 135}

_REFUSAL_HINTS: Final = {
    PACKET_TOO_LARGE: "it is larger than the broker's maximum packet size; lower the "
    "payload size limit or raise the broker's",
    0x97: "the broker's quota for this client is used up",
}

OnConnect = Callable[[Connection], Coroutine[Any, Any, None]]
OnMessage = Callable[[Connection, str, bytes], Coroutine[Any, Any, None]]


def auth_refused(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None) or getattr(exc, "code", None)
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in _AUTH_CODES


def _stopping() -> bool:
    """Whether the running task is being cancelled (the gateway is stopping)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class MqttSession:
    def __init__(self, name: str, link: MqttLink, will: Will | None = None) -> None:
        self.name = name
        self.link = link
        self.will = will
        self.connected = False
        self.connects = 0
        self.last_error: str | None = None
        self.subscribe_refused = 0
        self.publish_refused = 0
        self.failures = 0  # unexpected exceptions in the bridge, each survived by reconnecting
        self.first_attempt_done = asyncio.Event()
        self._refused_log = RateLimitedLog(log, 60.0)
        self._failures_logged: set[str] = set()

    def connect(self) -> AbstractAsyncContextManager[Connection]:
        """One connection to the broker, on the path its protocol setting uses."""
        if self.link.v5:
            return mqtt_v5.connect(self.link, self.will, self.refused)
        return mqtt_paho.connect(self.link, self.will, self.refused)

    def client(self) -> aiomqtt.Client:
        """An aiomqtt client as the 3.1.1 path makes it (tests and benchmarks use it)."""
        return mqtt_paho.client(self.link, self.will)

    async def subscribe(self, conn: Connection, subs: Sequence[Subscription]) -> None:
        """Subscribes; a filter the broker refuses is logged (ERROR) and counted."""
        for sub, code in zip(subs, await conn.subscribe(subs), strict=True):
            if code >= 0x80:  # 3.1.1: 0x80 failure; 5: reason codes >= 0x80
                self.subscribe_refused += 1
                log.error(
                    "%s: %s:%d refused the subscription to %s (code %#x): messages on it "
                    "will not arrive; check the broker's ACL for this client",
                    self.name,
                    self.link.host,
                    self.link.port,
                    sub.topic,
                    code,
                )

    def refused(self, topic: str, code: int) -> None:
        """A publish the broker refused (MQTT 5 reason code), or one it would drop the
        connection for: count it, say so. It is not sent again."""
        self.publish_refused += 1
        self._refused_log.warning(
            f"{self.name}:refused:{code}",
            "%s: %s:%d refused a message on %s (code %#x) and will not pass it on; %s",
            self.name,
            self.link.host,
            self.link.port,
            topic,
            code,
            _REFUSAL_HINTS.get(code, "check the broker's ACL for this client"),
        )

    async def run(
        self,
        subscriptions: Sequence[Subscription],
        on_connect: OnConnect,
        on_message: OnMessage,
    ) -> None:
        """Connects, runs the bridge, and reconnects, until cancelled."""
        attempt = 0
        kinds_seen: set[str] = set()
        while True:
            delay = backoff_s(attempt, self.link.reconnect_max_s)
            try:
                async with self.connect() as conn:
                    self.connected = True
                    self.connects += 1
                    self.last_error = None
                    attempt = 0
                    kinds_seen.clear()
                    log.info("%s: connected to %s:%d", self.name, self.link.host, self.link.port)
                    self.first_attempt_done.set()
                    await self.subscribe(conn, subscriptions)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(on_connect(conn), name=f"{self.name} connected")
                        async for topic, payload in conn.messages():
                            await on_message(conn, topic, payload)
                    # the message loop only ends when the connection does
            except* LINK_ERRORS as group:
                if _stopping():
                    # a cancelled connect can surface as a link error: stopping wins
                    raise asyncio.CancelledError from None
                exc = group.exceptions[0]
                self.connected = False
                self.first_attempt_done.set()
                self.last_error = str(exc)
                refused = auth_refused(exc)
                kind = "auth" if refused else type(exc).__name__
                level = logging.DEBUG if kind in kinds_seen else logging.WARNING
                kinds_seen.add(kind)
                if refused:
                    log.log(
                        level,
                        "%s: %s:%d refused the credentials (%s); check username/password "
                        "or token; retrying every %.0f s",
                        self.name,
                        self.link.host,
                        self.link.port,
                        exc,
                        self.link.reconnect_max_s,
                    )
                    delay = self.link.reconnect_max_s
                else:
                    log.log(
                        level,
                        "%s: no connection to %s:%d (%s); retrying with backoff",
                        self.name,
                        self.link.host,
                        self.link.port,
                        exc,
                    )
                attempt += 1
            except* Exception as group:  # noqa: BLE001 (see below)
                if _stopping():
                    # a TaskGroup raises its children's errors instead of the cancellation
                    # that stopped them (what the parts they used, closed first, raised)
                    raise asyncio.CancelledError from None
                # A bug in the bridge, not a peer's doing. The connection is made again
                # after a backoff, so it never stops the other bridge or the pipeline.
                self._failed(group.exceptions[0])
                delay = backoff_s(attempt, self.link.reconnect_max_s)
                attempt += 1
            finally:
                self.connected = False
            await asyncio.sleep(delay)

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        kind = type(exc).__name__
        first = kind not in self._failures_logged
        self._failures_logged.add(kind)
        log.error(
            "%s: unexpected %s (%s); reconnecting with backoff (%d so far)",
            self.name,
            kind,
            exc,
            self.failures,
            exc_info=exc if first else None,  # the traceback once: it is for a bug report
        )

    def health(self) -> dict[str, Any]:
        return {
            "connected": self.connected,
            "connects": self.connects,
            "last_error": self.last_error,
            "subscribe_refused": self.subscribe_refused,
            "publish_refused": self.publish_refused,
            "failures": self.failures,
        }
