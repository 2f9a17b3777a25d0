"""Whether the configured adapter exists, asked of the bus without waking BlueZ.

A USB dongle can be unplugged, and systemd does not start bluetoothd at all on a
machine that boots without a controller. Asking BlueZ then either fails at once
for every scanner start (about 120 log lines a minute, and adapter resets that
cannot work), or waits 25 s for D-Bus to activate a bluetoothd that will not
come. The bus answers at once and activates nothing: is ``org.bluez`` owned
(``NameHasOwner``), and does it hold ``/org/bluez/<adapter>``
(``GetManagedObjects``)? While it does not, the source waits quietly: one line
when the adapter goes missing, one when it is there again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

from dbus_fast import BusType, Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus

log = logging.getLogger(__name__)

POLL_S: Final = 2.0
_CALL_TIMEOUT_S: Final = 5.0


class AdapterWatch:
    def __init__(self, adapter: str, poll_s: float = POLL_S) -> None:
        self.adapter = adapter
        self._path = f"/org/bluez/{adapter}"
        self._poll_s = poll_s
        self.present: bool | None = None  # None: not asked yet
        self.missing_since_start = 0  # times it went missing

    async def wait(self) -> None:
        """Returns once the adapter is there; logs a line when that changes."""
        while True:
            if await self.check():
                if self.present is False:
                    log.warning("ble: adapter %s is there again: scanning", self.adapter)
                self.present = True
                return
            if self.present is not False:
                self.missing_since_start += 1
                log.warning(
                    "ble: adapter %s not found (a Bluetooth dongle unplugged, or "
                    "bluetooth.service not running): waiting for it; other sources go on",
                    self.adapter,
                )
            self.present = False
            await asyncio.sleep(self._poll_s)

    async def check(self) -> bool:
        """True when BlueZ runs and has the adapter. Never raises, never activates BlueZ."""
        bus: MessageBus | None = None
        try:
            async with asyncio.timeout(_CALL_TIMEOUT_S):
                bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
                owned = await _call(
                    bus,
                    "org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus",
                    "NameHasOwner",
                    "s",
                    ["org.bluez"],
                )
                if not owned or not owned[0]:
                    return False
                objects = await _call(
                    bus, "org.bluez", "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects"
                )
                if not objects:
                    return False
                return "org.bluez.Adapter1" in objects[0].get(self._path, {})
        except Exception:  # noqa: BLE001 - no bus, a refused call, a timeout: not there
            return False
        finally:
            if bus is not None:
                with contextlib.suppress(Exception):
                    bus.disconnect()


async def _call(
    bus: MessageBus,
    destination: str,
    path: str,
    interface: str,
    member: str,
    signature: str = "",
    body: list[Any] | None = None,
) -> list[Any] | None:
    reply = await bus.call(
        Message(
            destination=destination,
            path=path,
            interface=interface,
            member=member,
            signature=signature,
            body=body or [],
            flags=MessageFlag.NO_AUTOSTART,  # never wait for D-Bus to activate a service
        )
    )
    if reply is None or reply.message_type != MessageType.METHOD_RETURN:
        return None
    return list(reply.body)
