"""Discovery with a watchdog: BlueZ scanners stall silently, so this one is watched.

The scanner restarts discovery when no advertisement arrived for
``scanner_silence_s`` or when starting it fails (BlueZ answers InProgress,
NotReady, Failed); after ``adapter_reset_after`` failed starts in a row it
power-cycles the adapter through D-Bus, as habluetooth does, and goes on.
Every BlueZ call runs under an outer timeout. While the adapter is missing
(adapter.py) it starts nothing and waits quietly.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid as uuid_module
from collections.abc import Callable
from typing import Any, Final

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from dbus_fast import BusType, Variant
from dbus_fast.aio import MessageBus

from gateway.backoff import backoff_s
from gateway.config import BleSection
from gateway.protocol.constants import BLE_SERVICE_UUID
from gateway.sources.ble.adapter import AdapterWatch

log = logging.getLogger(__name__)

Seen = Callable[[BLEDevice, AdvertisementData], bool]
"""Handles one report; False when it was no advertisement (see BleSource._seen)."""
_CHECK_MAX_S: Final = 10.0


class Scanner:
    def __init__(self, cfg: BleSection, seen: Seen) -> None:
        self._cfg = cfg
        self._seen = seen
        self.adapter = AdapterWatch(cfg.adapter)
        self.last_heard = time.monotonic()
        self.restarts = 0  # discovery restarted after silence
        self.failures = 0  # discovery failed to start or stop
        self.adapter_resets = 0
        self.running = False
        self.last_error: str | None = None

    def health(self) -> dict[str, Any]:
        return {
            "scanning": self.running,
            "silent_s": round(time.monotonic() - self.last_heard, 1),
            "restarts": self.restarts,
            "failures": self.failures,
            "adapter_resets": self.adapter_resets,
            "adapter_present": self.adapter.present,
            "last_error": self.last_error,
        }

    def _callback(self, device: BLEDevice, adv: AdvertisementData) -> None:
        if self._seen(device, adv):
            self.last_heard = time.monotonic()

    async def run(self) -> None:
        failed_in_a_row = 0
        while True:
            await self.adapter.wait()
            scanner = BleakScanner(
                self._callback, scanning_mode=self._cfg.scanning, bluez=self._bluez_args()
            )
            try:
                await self._bounded(scanner.start(), "start discovery")
            except Exception as exc:  # noqa: BLE001 - whatever BlueZ raises, try again
                if not await self.adapter.check():
                    failed_in_a_row = 0
                    continue  # gone meanwhile: wait() says so once
                self.failures += 1
                failed_in_a_row += 1
                self.last_error = f"start: {exc!r}"
                log.warning(
                    "ble: discovery on %s failed to start (%d in a row): %r",
                    self._cfg.adapter,
                    failed_in_a_row,
                    exc,
                )
                if (
                    self._cfg.adapter_reset_after
                    and failed_in_a_row >= self._cfg.adapter_reset_after
                ):
                    await self._reset_adapter()
                    failed_in_a_row = 0
                await asyncio.sleep(backoff_s(failed_in_a_row, self._cfg.backoff_max_s))
                continue
            failed_in_a_row = 0
            self.running = True
            self.last_heard = time.monotonic()
            try:
                await self._watch()
            finally:
                self.running = False
                try:
                    await self._bounded(scanner.stop(), "stop discovery")
                except Exception as exc:  # noqa: BLE001 - a scanner that will not stop is replaced
                    self.failures += 1
                    self.last_error = f"stop: {exc!r}"

    def _bluez_args(self) -> BlueZScannerArgs:
        args: BlueZScannerArgs = {"adapter": self._cfg.adapter}
        if self._cfg.scanning == "passive":
            # BlueZ scans passively only through an advertisement monitor, which matches
            # patterns: the protocol's company id, and its service UUID (little-endian)
            uuid = uuid_module.UUID(BLE_SERVICE_UUID).bytes[::-1]
            args["or_patterns"] = [
                OrPattern(0, AdvertisementDataType.MANUFACTURER_SPECIFIC_DATA, b"\xff\xff"),
                OrPattern(0, AdvertisementDataType.COMPLETE_LIST_SERVICE_UUID128, uuid),
                OrPattern(0, AdvertisementDataType.INCOMPLETE_LIST_SERVICE_UUID128, uuid),
            ]
        return args

    async def _watch(self) -> None:
        """Returns when the scanner has been silent for too long."""
        silence = self._cfg.scanner_silence_s
        while True:
            await asyncio.sleep(min(silence / 3, _CHECK_MAX_S))
            if time.monotonic() - self.last_heard > silence:
                self.restarts += 1
                log.info(
                    "ble: no advertisement on %s for %.0f s: restarting discovery",
                    self._cfg.adapter,
                    silence,
                )
                return

    async def _bounded(self, call: Any, what: str) -> None:
        try:
            async with asyncio.timeout(self._cfg.call_timeout_s):
                await call
        except TimeoutError:
            raise TimeoutError(
                f"{what} did not answer within {self._cfg.call_timeout_s:g} s"
            ) from None

    async def _reset_adapter(self) -> None:
        """Powers the adapter off and on again (BlueZ's Adapter1.Powered)."""
        self.adapter_resets += 1
        log.warning("ble: power-cycling adapter %s", self._cfg.adapter)
        try:
            async with asyncio.timeout(self._cfg.call_timeout_s * 3):
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
                try:
                    path = f"/org/bluez/{self._cfg.adapter}"
                    intro = await bus.introspect("org.bluez", path)
                    props: Any = bus.get_proxy_object("org.bluez", path, intro).get_interface(
                        "org.freedesktop.DBus.Properties"
                    )
                    await props.call_set("org.bluez.Adapter1", "Powered", Variant("b", False))
                    await asyncio.sleep(0.5)
                    await props.call_set("org.bluez.Adapter1", "Powered", Variant("b", True))
                finally:
                    bus.disconnect()
        except Exception as exc:  # noqa: BLE001 - counted and logged; discovery is tried again
            self.last_error = f"adapter reset: {exc!r}"
            log.warning("ble: power-cycling %s failed: %r", self._cfg.adapter, exc)
