"""Serial ports (USB CDC or UART): several at once, reopened when they vanish.

A configured path may be a glob (``/dev/serial/by-id/*``): matches are rescanned
while running, so a node plugged in later is picked up. Each open port reads
through its own :class:`FrameDecoder`; downlink messages (ACKs, commands) are
written back on the port their node was last heard on.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import serial
import serial_asyncio_fast

from gateway.backoff import backoff_s
from gateway.clock import Clock
from gateway.config import SerialSection
from gateway.logs import RateLimitedLog
from gateway.model import Downlink, Inbound
from gateway.protocol import FrameDecoder, encode_frame
from gateway.sources import IngestPort

log = logging.getLogger(__name__)

READ_SIZE = 4096


@dataclass(slots=True)
class PortStats:
    open: bool = False
    opens: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    frames: int = 0
    bad: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "opens": self.opens,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "frames": self.frames,
            "bad_frames": sum(self.bad.values()),
            "bad": dict(self.bad),
        }


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


class SerialSource:
    def __init__(self, cfg: SerialSection, clock: Clock, bad_input: RateLimitedLog) -> None:
        self.cfg = cfg
        self.name = f"serial:{cfg.path}"
        self._clock = clock
        self._bad = bad_input
        self.ports: dict[str, PortStats] = {}

    def health(self) -> dict[str, Any]:
        return {path: st.as_json() for path, st in self.ports.items()}

    async def run(self, ingest: IngestPort) -> None:
        if not _is_glob(self.cfg.path):
            await self._port(self.cfg.path, ingest, vanish_ends=False)
            return
        running: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                for path in sorted(glob.glob(self.cfg.path)):
                    task = running.get(path)
                    if task is None or task.done():
                        running[path] = asyncio.create_task(
                            self._port(path, ingest, vanish_ends=True), name=f"serial {path}"
                        )
                await asyncio.sleep(self.cfg.rescan_s)
        finally:
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    async def _port(self, path: str, ingest: IngestPort, *, vanish_ends: bool) -> None:
        stats = self.ports.setdefault(path, PortStats())
        attempt = 0
        while True:
            if vanish_ends and not os.path.exists(path):  # noqa: ASYNC240 (one stat of a device node)
                return  # the rescan starts a new task when it is back
            try:
                reader, writer = await serial_asyncio_fast.open_serial_connection(
                    url=path, baudrate=self.cfg.baudrate
                )
            except (OSError, serial.SerialException) as exc:
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                log.log(level, "serial %s: cannot open (%s); retrying", path, exc)
                await asyncio.sleep(backoff_s(attempt, self.cfg.reopen_max_s))
                attempt += 1
                continue
            attempt = 0
            stats.open = True
            stats.opens += 1
            log.info("serial %s: open at %d baud", path, self.cfg.baudrate)
            try:
                await self._read(path, reader, writer, stats, ingest)
            except (OSError, serial.SerialException) as exc:
                log.warning("serial %s: lost (%s); reopening", path, exc)
            finally:
                stats.open = False
                writer.close()
                ingest.port_closed(path)
            await asyncio.sleep(backoff_s(0, self.cfg.reopen_max_s))

    async def _read(
        self,
        path: str,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        stats: PortStats,
        ingest: IngestPort,
    ) -> None:
        # Bytes queued before we opened belong to nobody's current frame; a UART
        # would not have kept them either.
        with contextlib.suppress(AttributeError, OSError, serial.SerialException):
            writer.transport.serial.reset_input_buffer()  # type: ignore[attr-defined]

        async def downlink(message: bytes) -> None:
            frame = encode_frame(message)
            writer.write(frame)
            stats.bytes_out += len(frame)
            await writer.drain()

        link: Downlink = downlink
        decoder = FrameDecoder()
        seen = Counter[str]()
        while True:
            data = await reader.read(READ_SIZE)
            if not data:
                raise OSError("end of file")
            arrival = self._clock.now_ms()
            stats.bytes_in += len(data)
            messages = decoder.feed(data)
            stats.frames += len(messages)
            await ingest.put_all(Inbound(msg, "serial", path, arrival, link) for msg in messages)
            if decoder.frames_bad != seen.total():
                now = Counter({r.value: n for r, n in decoder.errors.items()})
                stats.bad.update(now - seen)
                seen = now
                self._bad.warning(
                    f"serial:{path}",
                    "serial %s: dropped a bad frame (%s); %d so far on this port",
                    path,
                    decoder.last_error,
                    stats.bad.total(),
                )
