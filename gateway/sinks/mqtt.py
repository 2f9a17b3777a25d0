"""One asyncio MQTT session with its own reconnect loop (aiomqtt does not reconnect).

Both the Node-RED bridge and the ThingsBoard bridge run on this. The session
owns the connection; the bridge supplies what to do once connected
(``on_connect``, which runs until the connection ends) and how to handle an
incoming message. A refused login waits the longest backoff; the first failure
of a kind logs a WARNING, repeats log at DEBUG.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.backoff import backoff_s
from gateway.logs import RateLimitedLog

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

# CONNACK codes that mean "your credentials are wrong" (3.1.1 and 5)
_AUTH_CODES: Final = {4, 5, 134, 135}


@dataclass(frozen=True, slots=True)
class MqttLink:
    """Everything needed to reach one broker."""

    host: str
    port: int
    protocol: str  # "3.1.1" or "5"
    client_id: str
    keepalive_s: int
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False
    max_inflight: int = 1000
    reconnect_max_s: float = 60.0

    @property
    def v5(self) -> bool:
        return self.protocol == "5"


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    no_local: bool = False  # MQTT 5: do not deliver our own publishes back to us


OnConnect = Callable[[aiomqtt.Client], Coroutine[Any, Any, None]]
OnMessage = Callable[[aiomqtt.Client, aiomqtt.Message], Coroutine[Any, Any, None]]


def _tls(link: MqttLink) -> ssl.SSLContext | None:
    if link.ca_file is None and link.cert_file is None:
        return None
    ctx = ssl.create_default_context(cafile=link.ca_file)
    if link.cert_file is not None:
        ctx.load_cert_chain(link.cert_file, link.key_file)
    if link.tls_insecure:
        ctx.check_hostname = False
    return ctx


def auth_refused(exc: BaseException) -> bool:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in _AUTH_CODES


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


def _stopping() -> bool:
    """Whether the running task is being cancelled (the gateway is stopping)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class MqttSession:
    def __init__(self, name: str, link: MqttLink, will: aiomqtt.Will | None = None) -> None:
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

    def client(self) -> aiomqtt.Client:
        link = self.link
        tls = _tls(link)  # reads the CA and key files: once per connection, not twice
        client = aiomqtt.Client(
            link.host,
            link.port,
            username=link.username,
            password=link.password,
            identifier=link.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if link.v5 else aiomqtt.ProtocolVersion.V311,
            will=self.will,
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
        client.pending_calls_threshold = link.max_inflight + 100
        _add_writers_only_to_open_sockets(client)
        return client

    async def subscribe(self, client: aiomqtt.Client, subs: Sequence[Subscription]) -> None:
        """Subscribes; a filter the broker refuses is logged (ERROR) and counted."""
        for sub in subs:
            if self.link.v5:
                opts = SubscribeOptions(qos=1, noLocal=sub.no_local)
                granted = await client.subscribe(sub.topic, options=opts)
            else:
                granted = await client.subscribe(sub.topic, qos=1)
            code = granted[0] if granted else 0x80
            value = code if isinstance(code, int) else int(code.value)
            if value >= 0x80:  # 3.1.1: 0x80 failure; 5: reason codes >= 0x80
                self.subscribe_refused += 1
                log.error(
                    "%s: %s:%d refused the subscription to %s (code %#x): messages on it "
                    "will not arrive; check the broker's ACL for this client",
                    self.name,
                    self.link.host,
                    self.link.port,
                    sub.topic,
                    value,
                )

    def refused(self, topic: str, code: int) -> None:
        """An MQTT 5 broker acknowledged a publish with a failure code: count it, say so."""
        self.publish_refused += 1
        self._refused_log.warning(
            f"{self.name}:refused",
            "%s: %s:%d refused a message on %s (code %#x) and will not pass it on; "
            "check the broker's ACL for this client",
            self.name,
            self.link.host,
            self.link.port,
            topic,
            code,
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
                async with self.client() as client:
                    self.connected = True
                    self.connects += 1
                    self.last_error = None
                    attempt = 0
                    kinds_seen.clear()
                    log.info("%s: connected to %s:%d", self.name, self.link.host, self.link.port)
                    self.first_attempt_done.set()
                    await self.subscribe(client, subscriptions)
                    async with asyncio.TaskGroup() as tg:
                        tg.create_task(on_connect(client), name=f"{self.name} connected")
                        async for message in client.messages:
                            await on_message(client, message)
                    # the message loop only ends when the connection does
            except* aiomqtt.MqttError as group:
                if _stopping():
                    # aiomqtt turns a cancelled connect into MqttError: stopping wins
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
