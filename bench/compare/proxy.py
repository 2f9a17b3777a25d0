"""A TCP proxy in its own process between the gateways and the ThingsBoard-side broker.

``down()`` is the broker outage as a gateway sees it: every connection is cut and new ones
are refused, while the counter, connected to the broker itself, is never interrupted, so
what a gateway loses in an outage is its own loss and not the counter's.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import socket
from multiprocessing.connection import Connection


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class _Proxy:
    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.server: asyncio.Server | None = None
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        for s in (writer, up_w):
            sock = s.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = (writer, up_w)
        self.links.add(link)
        try:
            await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer))
        finally:
            self.links.discard(link)

    async def up(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, reuse_address=True
            )

    async def down(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for a, b in list(self.links):
            for w in (a, b):
                with contextlib.suppress(OSError):
                    w.transport.abort()  # a reset, as when a broker dies
        self.links.clear()


def _main(port: int, target: int, conn: Connection) -> None:
    async def run() -> None:
        proxy = _Proxy(port, target)
        await proxy.up()
        loop = asyncio.get_running_loop()
        while True:
            cmd = await loop.run_in_executor(None, conn.recv)
            if cmd == "stop":
                await proxy.down()
                conn.send("ok")
                return
            await (proxy.up() if cmd == "up" else proxy.down())
            conn.send("ok")

    asyncio.run(run())


class Proxy:
    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self._conn, child = mp.Pipe()
        self._proc = mp.Process(target=_main, args=(port, target, child), daemon=True)
        self._proc.start()
        self.up()  # returns once it listens

    def _ask(self, cmd: str) -> None:
        self._conn.send(cmd)
        if not self._conn.poll(30):
            raise RuntimeError(f"proxy did not answer {cmd!r}")
        self._conn.recv()

    def up(self) -> None:
        self._ask("up")

    def down(self) -> None:
        self._ask("down")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ask("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.kill()
