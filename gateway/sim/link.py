"""Runs simulated nodes over a byte link: a pseudo-terminal the gateway opens, or a real port.

Writes never block: when nobody reads the other end and the buffer is full,
the bytes are dropped, as a UART's would be. Nothing relies on the kernel
keeping bytes for a closed reader; the nodes' retransmit rings recover them.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gateway.protocol import Ack, FrameDecoder, encode_frame
from gateway.sim.node import SimulatedNode


class Link(Protocol):
    """What NodeRunner drives: framed bytes out, framed bytes in (a pty, a port, or the
    BLE link of sim/ble_node.py, which sends each message the BLE way)."""

    path: str

    def write(self, data: bytes) -> None: ...

    async def read(self) -> bytes: ...


@runtime_checkable
class InfoServer(Protocol):
    """A link that serves its node's INFO when asked (a BLE node's info characteristic):
    the runner hands it a function that encodes the INFO anew, with the uptime of that
    moment, as the firmware does on each connection."""

    def serve_info(self, make: Callable[[], bytes]) -> None: ...


class FdLink:
    """A non-blocking file descriptor with an async read and a lossy write."""

    def __init__(self, fd: int, keepalive_fd: int | None = None, path: str = "") -> None:
        self.fd = fd
        self.path = path
        self._keepalive = keepalive_fd
        os.set_blocking(fd, False)
        self.tx_dropped_bytes = 0

    def write(self, data: bytes) -> None:
        if self.fd < 0:  # closed: an unplugged cable
            self.tx_dropped_bytes += len(data)
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.fd, view)
            except BlockingIOError:
                self.tx_dropped_bytes += len(view)
                return
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                self.tx_dropped_bytes += len(view)
                return
            view = view[n:]

    async def read(self) -> bytes:
        """The next bytes; waits (never spins) while there are none, also on a tty left
        in "polling" mode (VMIN=0) and after the other end hung up, where a read returns
        nothing at once instead of blocking."""
        loop = asyncio.get_running_loop()
        while True:
            if self.fd < 0:  # closed: nothing ever comes
                await asyncio.sleep(0.05)
                continue
            try:
                data = os.read(self.fd, 4096)
                if data:
                    return data
                await asyncio.sleep(0.05)  # hung up, or VMIN=0: nothing to wait on
            except BlockingIOError:
                fut: asyncio.Future[None] = loop.create_future()
                # the reader may fire again before this task runs and removes it
                loop.add_reader(self.fd, _settle, fut)
                try:
                    await fut
                finally:
                    loop.remove_reader(self.fd)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                await asyncio.sleep(0.05)  # nobody on the other end yet

    def close(self) -> None:
        """Closes both ends once: a second call must not close the numbers again, which by
        then may belong to another file (a database, a socket) of this process."""
        for fd in (self.fd, self._keepalive):
            if fd is not None and fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.fd, self._keepalive = -1, None


def _settle(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def open_pty() -> FdLink:
    """A pty pair: the simulator keeps the master; the gateway opens ``link.path``.

    The simulator also holds the slave open, so the gateway closing and
    reopening it never hangs up the master.
    """
    master, slave = os.openpty()
    tty.setraw(slave)
    return FdLink(master, slave, os.ttyname(slave))


def open_device(path: str, baudrate: int = 115200) -> FdLink:
    """A serial device (or the host end of a virtual machine's UART) as a link."""
    import serial  # pyserial, a core dependency through pyserial-asyncio-fast

    port = serial.Serial(path, baudrate, timeout=0)
    fd = os.dup(port.fileno())
    port.close()
    # pyserial leaves VMIN=0 (a read with no data returns b"" at once): with VMIN=1 a
    # non-blocking read says EAGAIN instead, and the link waits for the port to be readable
    attrs = termios.tcgetattr(fd)
    attrs[6][termios.VMIN], attrs[6][termios.VTIME] = 1, 0
    termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return FdLink(fd, path=path)


@dataclass(slots=True)
class SimStats:
    events: int = 0
    heartbeats: int = 0
    resends: int = 0
    acks: int = 0
    commands: int = 0
    bad_downlink: int = 0


class NodeRunner:
    """Drives nodes on one link: events at a rate, heartbeats, resends, command answers."""

    def __init__(
        self,
        link: Link,
        nodes: list[SimulatedNode],
        *,
        rate_hz: float,
        count: int | None = None,
        tick_s: float = 0.01,
        booted_s_ago: float = 0.0,
    ) -> None:
        self.link = link
        self.nodes = {n.node_id: n for n in nodes}
        self.rate_hz = rate_hz
        self.count = count
        self.tick_s = tick_s
        self.stats = SimStats()
        self._t0 = time.monotonic()
        # when each node booted: its uptimes count from here
        self._boot_t0 = {n.node_id: self._t0 - booted_s_ago for n in nodes}
        if isinstance(link, InfoServer) and len(nodes) == 1:
            node = nodes[0]
            link.serve_info(lambda: node.info(self.uptime_ms(node)))

    def uptime_ms(self, node: SimulatedNode) -> int:
        return int((time.monotonic() - self._boot_t0[node.node_id]) * 1000)

    @property
    def done(self) -> bool:
        """Every node has sent ``count`` events and had them all acknowledged."""
        return self.count is not None and all(
            n.seq >= self.count and not n.ring for n in self.nodes.values()
        )

    async def run(self, *, until_acked: bool = False) -> None:
        reader = asyncio.create_task(self._read(), name=f"sim reader {self.link.path}")
        try:
            await self._generate(until_acked=until_acked)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _generate(self, *, until_acked: bool) -> None:
        out = bytearray()
        for node in self.nodes.values():
            out += encode_frame(node.info(self.uptime_ms(node)))
        self.link.write(bytes(out))
        last_hb = dict.fromkeys(self.nodes, 0.0)
        start = time.monotonic()
        # a node that already sent events (an earlier runner) goes on from there
        base = {node_id: node.seq for node_id, node in self.nodes.items()}
        while not (until_acked and self.done):
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            out.clear()
            for node in self.nodes.values():
                up = self.uptime_ms(node)
                target = base[node.node_id] + int((now - start) * self.rate_hz)
                if self.count is not None:
                    target = min(target, self.count)
                while node.seq < target:
                    out += encode_frame(node.event(up))
                    self.stats.events += 1
                for raw in node.due(up):
                    out += encode_frame(raw)
                    self.stats.resends += 1
                if now - last_hb[node.node_id] >= node.heartbeat_period_s:
                    last_hb[node.node_id] = now
                    out += encode_frame(node.heartbeat(up))
                    self.stats.heartbeats += 1
            if out:
                self.link.write(bytes(out))

    async def _read(self) -> None:
        decoder = FrameDecoder()
        while True:
            data = await self.link.read()
            replies = bytearray()
            for msg in decoder.feed(data):
                node = self.nodes.get(msg.header.node_id)
                if node is None:
                    continue
                if isinstance(msg.body, Ack):
                    self.stats.acks += 1
                else:
                    self.stats.commands += 1
                before = node.reboots
                for raw in node.on_downlink(msg, self.uptime_ms(node)):
                    replies += encode_frame(raw)
                if node.reboots != before:
                    self._reboot(node)
                    replies += encode_frame(node.info(0))
            self.stats.bad_downlink = decoder.frames_bad
            if replies:
                self.link.write(bytes(replies))

    def _reboot(self, node: SimulatedNode) -> None:
        node.boot_id += 1
        node.seq = 0
        node.dropped += len(node.ring)
        node.ring.clear()
        node.inferences = 0
        self._boot_t0[node.node_id] = time.monotonic()
