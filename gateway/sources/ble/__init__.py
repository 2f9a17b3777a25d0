"""The BLE source (docs/ble.md): connected nodes and advertisement-only nodes, via bleak.

One scanner (scan.py, with its watchdog) hears every advertisement. Compact
protocol adverts go to the pipeline as ``ble-adv`` messages (adverts.py).
A device that offers the protocol's GATT service gets a link task: connect,
session, backoff, again (link.py). At most ``max_connections`` sessions run at
once; other nodes wait for a slot in the order they were found, and their
events stay in their rings meanwhile. There is no rotation: a node rotated
out would have to hold everything it detected until its next turn.

Only this package imports bleak, and only when ``[ble] enabled`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any, Final

from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak_retry_connector import calculate_backoff_time

from gateway.backoff import backoff_s
from gateway.config import BleSection
from gateway.logs import BadInput, RateLimitedLog
from gateway.model import Inbound, node_hex
from gateway.protocol.constants import BLE_SERVICE_UUID
from gateway.sources import IngestPort
from gateway.sources.ble.adverts import AdvertReader
from gateway.sources.ble.link import LinkLost, NodeLink
from gateway.sources.ble.scan import Scanner

log = logging.getLogger(__name__)

_ADVERT_QUEUE: Final = 4096
# a device not heard for this many backoff caps gets no more connect attempts until it
# is heard again
_FORGET_AFTER_CAPS: Final = 5


class BleSource:
    def __init__(self, cfg: BleSection, counters: Counter[str], bad_input: RateLimitedLog) -> None:
        self.cfg = cfg
        self.name = f"ble:{cfg.adapter}"
        self._c = counters
        self._bad = BadInput(counters, bad_input)
        self._scanner = Scanner(cfg, self._seen)
        self._adverts = AdvertReader(cfg.adapter, cfg.heartbeat_repeat_s, counters, self._bad)
        self._queue: asyncio.Queue[Inbound] = asyncio.Queue(_ADVERT_QUEUE)
        self._slots = asyncio.Semaphore(cfg.max_connections) if cfg.max_connections else None
        self._devices: dict[str, tuple[BLEDevice, float]] = {}  # address -> device, last heard
        self._rssi: dict[str, int] = {}
        self.links: dict[str, NodeLink] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.waiting: list[str] = []  # addresses waiting for a connection slot, in order
        self._ingest: IngestPort | None = None
        self._names = {e for e in cfg.allow if not _is_node_id(e)}
        self._ids = {e for e in cfg.allow if _is_node_id(e)}

    def health(self) -> dict[str, Any]:
        return {
            self.name: {
                **self._scanner.health(),
                "connected": sum(link.connected for link in self.links.values()),
                "waiting_for_slot": list(self.waiting),
                "links": {address: link.health() for address, link in self.links.items()},
            }
        }

    async def run(self, ingest: IngestPort) -> None:
        self._ingest = ingest
        pump = asyncio.create_task(self._pump(ingest), name=f"{self.name} adverts")
        try:
            await self._scanner.run()
        finally:
            pump.cancel()
            tasks = [pump, *self._tasks.values()]
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _pump(self, ingest: IngestPort) -> None:
        while True:
            await ingest.put(await self._queue.get())

    # ---- what the scanner hears --------------------------------------------------

    def _seen(self, device: BLEDevice, adv: AdvertisementData) -> bool:
        """One report of the scanner; False when it was no advertisement.

        bleak reports every change of a device's BlueZ properties as an advertisement,
        including those our own connection attempts cause (Connected, ServicesResolved).
        While a node has a session or an attempt under way, its reports say nothing
        about whether it is on the air: they neither keep it "heard" nor feed the
        scanner's watchdog.
        """
        address = device.address.upper()
        link = self.links.get(address)
        busy = link is not None and link.busy
        known = self._devices.get(address)
        heard = known[1] if busy and known is not None else time.monotonic()
        self._devices[address] = (device, heard)
        if adv.rssi is not None:
            self._rssi[address] = adv.rssi
            link = self.links.get(address)
            if link is not None:
                link.rssi = adv.rssi
        device_ok = self._device_allowed(address, adv.local_name)
        item = self._adverts.read(address, adv.manufacturer_data, adv.rssi)
        if item is not None:
            if device_ok is True or node_hex(item.message.header.node_id) in self._ids:
                try:
                    self._queue.put_nowait(item)
                except asyncio.QueueFull:
                    self._c["ble_adverts_dropped_busy"] += 1
            else:
                self._c["ble_adverts_not_allowed"] += 1
        if (
            self.cfg.connect
            and device_ok is not False
            and BLE_SERVICE_UUID in (u.lower() for u in adv.service_uuids)
            and address not in self._tasks
        ):
            self._tasks[address] = asyncio.create_task(
                self._keep_connected(address, device_ok is True), name=f"ble link {address}"
            )
        return not busy

    def _device_allowed(self, address: str, name: str | None) -> bool | None:
        """True: allowed; False: not; None: only its node id (once known) can allow it."""
        if not self.cfg.allow or address in self._names or (name and name in self._names):
            return True
        return None if self._ids else False

    # ---- one connected node, for as long as it is heard ----------------------------

    async def _keep_connected(self, address: str, by_device: bool) -> None:
        assert self._ingest is not None
        attempt = 0
        try:
            while True:
                device, heard = self._devices[address]
                if time.monotonic() - heard > _FORGET_AFTER_CAPS * self.cfg.backoff_max_s:
                    return  # not heard for long: the next advertisement starts again
                link = self.links.get(address)
                if link is None:
                    link = self.links[address] = NodeLink(
                        device,
                        adapter=self.cfg.adapter,
                        ingest=self._ingest,
                        bad=self._bad,
                        connect_timeout_s=self.cfg.connect_timeout_s,
                        call_timeout_s=self.cfg.call_timeout_s,
                        rssi=self._rssi.get(address),
                    )
                link.device = device
                delay = await self._one_session(link, by_device)
                attempt = 0 if delay is None else attempt + 1
                wait = backoff_s(attempt, self.cfg.backoff_max_s)
                await asyncio.sleep(max(wait, delay or 0.0))
        finally:
            self._tasks.pop(address, None)

    async def _one_session(self, link: NodeLink, by_device: bool) -> float | None:
        """Runs one session; returns None after a session that was up, else the delay the
        error asks for before the next attempt."""
        assert self._ingest is not None

        def allowed(node_id: int) -> bool:
            return by_device or node_hex(node_id) in self._ids

        slots = self._slots or contextlib.nullcontext()
        self.waiting.append(link.device.address.upper())
        try:
            async with slots:
                self.waiting.remove(link.device.address.upper())
                connects = link.stats.connects
                try:
                    await link.session(allowed)
                except LinkLost as exc:
                    reason = exc.reason
                    delay = 0.0
                except Exception as exc:  # noqa: BLE001 - bleak and D-Bus raise many types
                    reason = f"{type(exc).__name__}: {exc}"
                    delay = calculate_backoff_time(exc)
                link.stats.last_error = reason
                if link.stats.connects != connects:  # it was up: its node goes offline
                    self._ingest.port_closed(link.port, reason)
                    log.info("ble: %s lost: %s", link.port, reason)
                    return None
                self._c["ble_connect_failures"] += 1
                log.info("ble: no session with %s: %s", link.port, reason)
                return delay
        finally:
            with contextlib.suppress(ValueError):
                self.waiting.remove(link.device.address.upper())


def _is_node_id(entry: str) -> bool:
    return len(entry) == 16 and all(c in "0123456789abcdef" for c in entry)
