"""The ``protocol = "3.1.1"`` connection: aiomqtt and paho (ThingsBoard, older brokers).

The mqtt5 codec that carries ``protocol = "5"`` speaks only MQTT 5, so 3.1.1 stays on
aiomqtt, with record publishes through ``publisher.Publisher`` on paho's own publish.
What is worked around here in aiomqtt and paho is pinned in tests/test_conformance.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.sinks.mqtt_link import MqttLink, Subscription, Will, tls_context
from gateway.sinks.publisher import Publisher
from gateway.sinks.window import Refused

log = logging.getLogger(__name__)


class _LateAcks(logging.Filter):
    """aiomqtt logs a SUBACK or UNSUBACK whose call it no longer waits for with a
    traceback ("Unexpected message ID"). The call was cancelled (the gateway stopping
    while it subscribed) or timed out and has said so itself: nothing is lost, and the
    record is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unexpected message ID")


# aiomqtt's own logger, which its paho client narrates every packet to (see logs.py)
client_log = logging.getLogger("mqtt")
client_log.addFilter(_LateAcks())


def client(link: MqttLink, will: Will | None) -> aiomqtt.Client:
    tls = tls_context(link)  # reads the CA and key files: once per connection, not twice
    c = aiomqtt.Client(
        link.host,
        link.port,
        username=link.username,
        password=link.password,
        identifier=link.client_id,
        protocol=aiomqtt.ProtocolVersion.V5 if link.v5 else aiomqtt.ProtocolVersion.V311,
        will=aiomqtt.Will(will.topic, will.payload, qos=1, retain=will.retain) if will else None,
        keepalive=link.keepalive_s,
        tls_context=tls,
        tls_insecure=link.tls_insecure if tls else None,
        # 0: no cap inside paho. The sinks' publishers bound what is in flight, and
        # paho's own cap walks its whole table of outgoing messages on every PUBACK.
        max_inflight_messages=0,
        max_queued_outgoing_messages=0,
        clean_session=None if link.v5 else True,
        timeout=30,
        logger=client_log,
    )
    # aiomqtt warns above 10 pending publishes; we keep up to max_inflight on purpose
    c.pending_calls_threshold = link.max_inflight + 100
    _add_writers_only_to_open_sockets(c)
    return c


class PahoConnection:
    """``mqtt_link.Connection`` on one connected aiomqtt client."""

    def __init__(self, client: aiomqtt.Client, link: MqttLink, refused: Refused) -> None:
        self._client = client
        self._link = link
        self._refused = refused

    async def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        await self._client.publish(topic, payload, qos=1, retain=retain)

    def records(self, size: int) -> Publisher:
        return Publisher(self._client, size, refused=self._refused)

    async def subscribe(self, subs: Sequence[Subscription]) -> list[int]:
        codes = []
        for sub in subs:
            if self._link.v5:
                opts = SubscribeOptions(qos=1, noLocal=sub.no_local)
                granted = await self._client.subscribe(sub.topic, options=opts)
            else:
                granted = await self._client.subscribe(sub.topic, qos=1)
            code = granted[0] if granted else 0x80
            codes.append(code if isinstance(code, int) else int(code.value))
        return codes

    async def messages(self) -> AsyncIterator[tuple[str, bytes]]:
        async for message in self._client.messages:
            payload = message.payload  # paho hands over bytes
            yield str(message.topic), payload if isinstance(payload, bytes) else b""


@contextlib.asynccontextmanager
async def connect(
    link: MqttLink, will: Will | None, refused: Refused
) -> AsyncIterator[PahoConnection]:
    async with client(link, will) as c:
        yield PahoConnection(c, link, refused)


def _add_writers_only_to_open_sockets(client: aiomqtt.Client) -> None:
    """aiomqtt's ``on_socket_register_write``, with the socket checked when it runs.

    paho asks for a writer on every publish; aiomqtt adds it on a later pass of the
    loop (``call_soon_threadsafe``, because paho may ask from the connect thread).
    A socket closed in between (a read error, a disconnect in the same pass) left
    asyncio adding a writer to a closed descriptor: "Bad file descriptor", or a
    writer on whatever socket reused the number. Pinned in tests/test_conformance.py.
    """
    loop = asyncio.get_running_loop()
    disconnected: asyncio.Future[None] = client._disconnected

    def register(c: paho.Client, userdata: Any, sock: Any) -> None:
        def write() -> None:
            try:
                c.loop_write()
            except Exception as exc:  # noqa: BLE001 (a broken pipe ends the connection)
                if not disconnected.done():
                    disconnected.set_exception(exc)

        def add() -> None:
            current = c.socket()
            if current is not None and current is sock:  # still this connection's: open
                loop.add_writer(current.fileno(), write)

        loop.call_soon_threadsafe(add)

    client._client.on_socket_register_write = register


def quiet_cancelled_connects(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """An event loop exception handler for one aiomqtt flaw, and the default for the rest.

    A client cancelled in the middle of its connect (the gateway stopping then) keeps its
    socket registered with the loop. When the broker's CONNACK or the socket's close comes
    later, paho calls aiomqtt's connect or disconnect callback, which sets or asks the
    cancelled connect future and so raises InvalidStateError or CancelledError inside the
    loop. Nothing is lost by it: the client was being stopped. Said at DEBUG, not as a
    traceback in the journal.
    """
    exc = context.get("exception")
    if isinstance(exc, asyncio.CancelledError | asyncio.InvalidStateError) and _raised_in(
        exc, "aiomqtt", ("_on_connect", "_on_disconnect")
    ):
        log.debug("a cancelled MQTT connect's callback after its end: %s", context.get("message"))
        return
    loop.default_exception_handler(context)


def _raised_in(exc: BaseException, package: str, functions: tuple[str, ...]) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name in functions and f"/{package}/" in code.co_filename:
            return True
        tb = tb.tb_next
    return False
