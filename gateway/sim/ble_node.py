"""The node side of a BLE link, on the rig (sim/bluez_rig.py): a link for NodeRunner.

A simulated node (sim/node.py, with its retransmit ring) is driven by the same
NodeRunner as on a serial line; this link carries its messages the way the
protocol says BLE does (docs/protocol.md 6): it registers the protocol's GATT
service and an advertisement on its own emulated adapter over D-Bus, as a
peripheral on BlueZ would, sends each uplink message as fragments on the event
characteristic (while the gateway is subscribed; otherwise they are dropped,
as a radio drops them, and the ring resends them), serves INFO on the info
characteristic, and reassembles what the gateway writes to the command one.

With ``advertise_only`` it never connects: EVENTs and HEARTBEATs become the
advertisement's manufacturer data (6.3), everything else is dropped.
"""

# No "from __future__ import annotations": dbus-fast reads the D-Bus signatures from
# the annotations at class creation, and takes a string "None" for a type.
import asyncio
import collections
import contextlib
import itertools
from collections.abc import Callable
from typing import Annotated, Any, Final

from dbus_fast import BusType, PropertyAccess, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import (
    DBusBool,
    DBusBytes,
    DBusDict,
    DBusObjectPath,
    DBusSignature,
    DBusStr,
    DBusUInt16,
)
from dbus_fast.service import ServiceInterface, dbus_property, method

from gateway.protocol import (
    Advert,
    Event,
    FrameDecoder,
    Heartbeat,
    Info,
    Message,
    MsgType,
    Reassembler,
    encode_advert,
    encode_frame,
    fragment,
)
from gateway.protocol.constants import (
    BLE_COMMAND_CHAR_UUID,
    BLE_COMPANY_ID,
    BLE_EVENT_CHAR_UUID,
    BLE_INFO_CHAR_UUID,
    BLE_SERVICE_UUID,
)
from gateway.protocol.errors import ProtocolError

# dbus-fast reads each member's D-Bus signature from its annotations
_Strings = Annotated[list[str], DBusSignature("as")]
_CompanyData = Annotated[dict[int, Variant], DBusSignature("a{qv}")]

_APP: Final = "/tgw_node/app"
_SERVICE: Final = f"{_APP}/service0"
_ADV: Final = "/tgw_node/adv0"
# The emulator reports an advertising device to a scanner only when one of its
# advertisement's properties changes (bluezoo 1.0.2 reports a device once); a real
# scanner hears every advertisement. The link changes Appearance this often so that
# the gateway keeps hearing it, as it would on the air.
_VARY_S: Final = 0.5


class _Service(ServiceInterface):
    def __init__(self) -> None:
        super().__init__("org.bluez.GattService1")

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return BLE_SERVICE_UUID

    @dbus_property(access=PropertyAccess.READ)
    def Primary(self) -> DBusBool:
        return True


class _Characteristic(ServiceInterface):
    def __init__(self, link: "BleNodeLink", uuid: str, flags: list[str]) -> None:
        super().__init__("org.bluez.GattCharacteristic1")
        self._link = link
        self._uuid = uuid
        self._flags = flags
        self.value = b""
        self.notifying = False

    @dbus_property(access=PropertyAccess.READ)
    def UUID(self) -> DBusStr:
        return self._uuid

    @dbus_property(access=PropertyAccess.READ)
    def Service(self) -> DBusObjectPath:
        return _SERVICE

    @dbus_property(access=PropertyAccess.READ)
    def Flags(self) -> _Strings:
        return self._flags

    @dbus_property(access=PropertyAccess.READ)
    def Value(self) -> DBusBytes:
        return self.value

    @dbus_property(access=PropertyAccess.READ)
    def Notifying(self) -> DBusBool:
        return self.notifying

    @method()
    async def ReadValue(self, options: DBusDict) -> DBusBytes:
        if self._link.info_delay_s:
            await asyncio.sleep(self._link.info_delay_s)  # a node that does not answer
        return self._link.read_value(self._uuid, int(options.get("offset", Variant("q", 0)).value))

    @method()
    def WriteValue(self, value: DBusBytes, options: DBusDict) -> None:
        self._link.written(bytes(value))

    @method()
    def StartNotify(self) -> None:
        self.notifying = True
        self.emit_properties_changed({"Notifying": True})

    @method()
    def StopNotify(self) -> None:
        self.notifying = False
        self.emit_properties_changed({"Notifying": False})

    @method()
    def Confirm(self) -> None:
        pass

    def notify(self, data: bytes) -> None:
        self.value = data
        self.emit_properties_changed({"Value": data})


class _Advertisement(ServiceInterface):
    def __init__(self, name: str, connectable: bool) -> None:
        super().__init__("org.bluez.LEAdvertisement1")
        self._name = name
        self._connectable = connectable
        self.manufacturer: bytes | None = None
        self.company = BLE_COMPANY_ID
        self.appearance = 0

    @dbus_property(access=PropertyAccess.READ)
    def Type(self) -> DBusStr:
        return "peripheral" if self._connectable else "broadcast"

    @dbus_property(access=PropertyAccess.READ)
    def ServiceUUIDs(self) -> _Strings:
        return [BLE_SERVICE_UUID] if self._connectable else []

    @dbus_property(access=PropertyAccess.READ)
    def LocalName(self) -> DBusStr:
        return self._name

    @dbus_property(access=PropertyAccess.READ)
    def Appearance(self) -> DBusUInt16:
        return self.appearance

    @dbus_property(access=PropertyAccess.READ)
    def Discoverable(self) -> DBusBool:
        return True

    @dbus_property(access=PropertyAccess.READ)
    def ManufacturerData(self) -> _CompanyData:
        if self.manufacturer is None:
            return {}
        return {self.company: Variant("ay", self.manufacturer)}

    @method()
    def Release(self) -> None:
        pass

    def set_manufacturer(self, data: bytes, company: int = BLE_COMPANY_ID) -> None:
        self.manufacturer, self.company = data, company
        self.emit_properties_changed({"ManufacturerData": self.ManufacturerData})

    def vary(self) -> None:
        self.appearance = (self.appearance + 1) & 0xFFFF
        self.emit_properties_changed({"Appearance": self.appearance})


class BleNodeLink:
    """One emulated node's BLE side; ``write``/``read`` make it a link for NodeRunner."""

    def __init__(
        self,
        adapter: str,
        *,
        name: str = "tgw-node",
        advertise_only: bool = False,
        att_mtu: int = 23,
        key: bytes | None = None,
        notifications_per_s: int = 2000,
    ) -> None:
        self.path = adapter
        # A radio paces notifications (a few per connection interval); sent unpaced,
        # thousands at once fill the D-Bus socket, and dbus-fast drops the connection
        # on the EAGAIN. The link sends at most this many per second.
        self.notifications_per_s = notifications_per_s
        self._air: collections.deque[bytes] = collections.deque()
        self._air_ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self.advertise_only = advertise_only
        self.att_mtu = att_mtu
        self._key = key
        self._bus: MessageBus | None = None
        self._adv = _Advertisement(name, connectable=not advertise_only)
        self._event = _Characteristic(self, BLE_EVENT_CHAR_UUID, ["notify"])
        self._command = _Characteristic(self, BLE_COMMAND_CHAR_UUID, ["write"])
        self._info = _Characteristic(self, BLE_INFO_CHAR_UUID, ["read"])
        self._frames = FrameDecoder()
        self._downlink = Reassembler()
        self._rx: asyncio.Queue[bytes] = asyncio.Queue()
        self._tags = itertools.cycle(range(256))
        self._vary: asyncio.Task[None] | None = None
        self.info_raw = b""
        self._make_info: Callable[[], bytes] | None = None
        self.notified = 0  # notifications sent
        self.dropped = 0  # uplink messages dropped while nobody was subscribed
        self.bad_downlink = 0
        # what tests make a node do wrong: raw notifications sent after the next message,
        # a fragment index of the next message that is not sent, a slow INFO read
        self.inject: list[bytes] = []
        self.drop_fragment: int | None = None
        self.info_delay_s = 0.0
        self.varying = True  # False: the advertisement stays as it is (a silent scanner)

    # ---- D-Bus side ------------------------------------------------------------

    async def start(self) -> None:
        bus = await MessageBus(bus_type=BusType.SYSTEM).connect()
        self._bus = bus
        adapter = f"/org/bluez/{self.path}"
        intro = await bus.introspect("org.bluez", adapter)
        proxy = bus.get_proxy_object("org.bluez", adapter, intro)
        if not self.advertise_only:
            bus.export(_SERVICE, _Service())
            bus.export(f"{_SERVICE}/char0", self._event)
            bus.export(f"{_SERVICE}/char1", self._command)
            bus.export(f"{_SERVICE}/char2", self._info)
            gatt: Any = proxy.get_interface("org.bluez.GattManager1")
            await gatt.call_register_application(_APP, {})
        bus.export(_ADV, self._adv)
        adverts: Any = proxy.get_interface("org.bluez.LEAdvertisingManager1")
        await adverts.call_register_advertisement(_ADV, {})
        self._vary = asyncio.create_task(self._keep_varying())
        self._sender = asyncio.create_task(self._send_paced())

    async def stop(self) -> None:
        """The node goes away: its D-Bus connection closes, and with it its service."""
        for task in (self._vary, self._sender):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._air.clear()
        if self._bus is not None:
            self._bus.disconnect()
            with contextlib.suppress(Exception):
                await self._bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
            self._bus = None
        self._event.notifying = False

    async def _send_paced(self) -> None:
        per_tick = max(1, self.notifications_per_s // 100)
        while True:
            await self._air_ready.wait()
            self._air_ready.clear()
            while self._air:
                for _ in range(min(per_tick, len(self._air))):
                    if not self._event.notifying:
                        self._air.clear()  # nobody subscribed: lost on the air
                        break
                    self._event.notify(self._air.popleft())
                    self.notified += 1
                await asyncio.sleep(0.01)

    def _on_air(self, pieces: list[bytes]) -> None:
        self._air.extend(pieces)
        self._air_ready.set()

    async def _keep_varying(self) -> None:
        while True:
            await asyncio.sleep(_VARY_S)
            if self.varying:
                self._adv.vary()

    def advertise_raw(self, data: bytes, company: int = BLE_COMPANY_ID) -> None:
        """Puts any bytes in the advertisement's manufacturer data (bad-input tests)."""
        self._adv.set_manufacturer(data, company)

    @property
    def subscribed(self) -> bool:
        return self._event.notifying

    def serve_info(self, make: Callable[[], bytes]) -> None:
        """INFO is encoded anew for each read of the info characteristic (a long read's
        later parts continue the same bytes), as the firmware does on each connection: an
        INFO kept from the start would carry an ever older uptime."""
        self._make_info = make

    def read_value(self, uuid: str, offset: int) -> bytes:
        if uuid != BLE_INFO_CHAR_UUID:
            return b""
        if offset == 0 and self._make_info is not None:
            self.info_raw = self._make_info()
        return self.info_raw[offset:]

    def written(self, value: bytes) -> None:
        try:
            raw = self._downlink.push(value)
        except ProtocolError:
            self.bad_downlink += 1
            return
        if raw is not None:
            self._rx.put_nowait(encode_frame(raw))

    # ---- the link NodeRunner drives ----------------------------------------------

    def write(self, data: bytes) -> None:
        """Framed uplink bytes from NodeRunner: each message goes out the BLE way."""
        for msg in self._frames.feed(data):
            if isinstance(msg.body, Info):
                self.info_raw = msg.raw  # what a read of the info characteristic returns
            if self.advertise_only:
                self._advertise(msg)
            elif self._event.notifying and self._bus is not None:
                pieces = fragment(msg.raw, next(self._tags), self.att_mtu)
                if self.drop_fragment is not None and self.drop_fragment < len(pieces):
                    del pieces[self.drop_fragment]
                    self.drop_fragment = None
                self._on_air(pieces)
            else:
                self.dropped += 1
        if self.inject and self._event.notifying:
            self._on_air(self.inject)
            self.inject = []

    def _advertise(self, msg: Message) -> None:
        h = msg.header
        body = msg.body
        if isinstance(body, Event):
            adv = Advert(MsgType.EVENT, h.node_id, h.boot_id, h.seq, body.label, body.score)
        elif isinstance(body, Heartbeat):
            adv = Advert(
                MsgType.HEARTBEAT,
                h.node_id,
                h.boot_id,
                h.seq,
                battery_mv=body.battery_mv,
                temperature_c=max(-127, min(127, body.temperature_cdeg // 100)),
            )
        else:
            self.dropped += 1
            return
        if self._bus is not None:
            self._adv.set_manufacturer(encode_advert(adv, self._key))

    async def read(self) -> bytes:
        return await self._rx.get()
