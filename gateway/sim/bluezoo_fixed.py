"""bluezoo 1.0.2 (a BlueZ D-Bus emulator) with the three fixes the BLE rig needs.

Run as ``python -m gateway.sim.bluezoo_fixed [bluezoo's arguments]``. Each fix is
the smallest change that makes the emulator behave as BlueZ does in the case the
rig depends on; none of them changes what bleak or the gateway sees of BlueZ.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any


def _apply() -> None:
    import bluezoo.device as device_module
    from bluezoo.adv.manager import LEAdvertisementClient
    from bluezoo.gatt import GattCharacteristicClientLink
    from bluezoo.gatt.manager import GattManager
    from bluezoo.interfaces.Device import DeviceInterface
    from bluezoo.interfaces.LEAdvertisement import LEAdvertisementInterface

    # Bug 1: ManufacturerData is declared a{sv}; BlueZ's type is a{qv} (company id u16).
    # With a{sv} every advertisement that carries manufacturer data breaks discovery.
    for cls in (DeviceInterface, device_module.Device, LEAdvertisementInterface):
        cls.__dict__["ManufacturerData"].property_signature = "a{qv}"
    del LEAdvertisementClient  # imported only so that its class is built with the fix

    # Bug 2: on disconnect the GATT objects of the link stay exported, so the next
    # Connect fails ("already exists"), and the node is never told StopNotify, so
    # notifications stop after a reconnect. BlueZ removes them and stops notifying.
    original_disconnect = device_module.Device.disconnect

    async def disconnect(self: Any, uuid: str | None = None) -> None:
        await original_disconnect(self, uuid)
        for link in list(self.services.values()):
            if isinstance(link, GattCharacteristicClientLink):
                link.client_props_changed_subscription.unsubscribe()
                if link.client.Notifying.get(False):
                    # the node may be gone already: then there is nothing to stop
                    with contextlib.suppress(Exception):
                        await link.client.StopNotify()
            self.peer_adapter.mock.remove_object(link)
        self.services.clear()

    device_module.Device.disconnect = disconnect

    # Bug 3: a node that goes away (its D-Bus connection closes, so its GATT application
    # is removed) stays "Connected" on the gateway's side: bleak never hears of the
    # disconnect. BlueZ reports the link as lost: disconnect every device linked to it.
    remove_app = GattManager._GattManager__del_gatt_application

    async def del_gatt_application(self: Any, app: Any) -> None:
        await remove_app(self, app)
        for adapter in self.mock.adapters.values():
            for dev in list(adapter.devices.values()):
                if dev.connected and dev.peer_adapter is self:
                    await dev.disconnect()

    GattManager._GattManager__del_gatt_application = del_gatt_application


def main() -> int:
    _apply()
    from bluezoo.bluezoo import main as bluezoo_main

    bluezoo_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
