"""Advertisement-only nodes: the compact form in manufacturer data (docs/protocol.md 6.3).

Each advert becomes the EVENT or HEARTBEAT wire message it stands for, with
transport ``ble-adv``, no downlink (so no ACK) and the RSSI it was heard with.
A node repeats an advert for as long as it advertises it: repeats are dropped
here, before the pipeline, by ``(node, boot, seq)`` for EVENTs and by content
within ``heartbeat_repeat_s`` for HEARTBEATs (which carry no uptime to tell
two apart). The pipeline stamps them with their arrival time.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from typing import Final, TypeVar

from gateway.clock import Clock
from gateway.logs import BadInput
from gateway.model import ADVERT_TRANSPORT, Inbound
from gateway.protocol import ProtocolError, advert_message, decode_advert
from gateway.protocol.constants import BLE_COMPANY_ID, MsgType

# nodes whose last advert is remembered for the repeat check; the oldest make room
_REMEMBERED: Final = 4096


class AdvertReader:
    def __init__(
        self, adapter: str, heartbeat_repeat_s: float, counters: Counter[str], bad: BadInput
    ) -> None:
        self.port = f"{adapter}/adverts"
        self._repeat_s = heartbeat_repeat_s
        self._c = counters
        self._bad = bad
        self._t0 = time.monotonic()
        # node -> what its last EVENT / HEARTBEAT advert said, and when (monotonic s)
        self._events: OrderedDict[int, tuple[int, int]] = OrderedDict()
        self._heartbeats: OrderedDict[int, tuple[bytes, float]] = OrderedDict()

    def read(
        self, address: str, manufacturer: dict[int, bytes], rssi: int | None
    ) -> Inbound | None:
        """The message one advertisement carries, or None (not ours, a repeat, bad)."""
        data = manufacturer.get(BLE_COMPANY_ID)
        if data is None:
            return None
        try:
            adv = decode_advert(bytes(data))
        except ProtocolError as exc:
            self._bad(
                "ble_adverts_bad",
                f"ble-adv:{address}",
                "ble: advert from %s refused: %s",
                address,
                exc,
            )
            return None
        now = time.monotonic()
        if adv.kind == MsgType.EVENT:
            if self._events.get(adv.node_id) == (adv.boot_id, adv.seq):
                self._c["ble_advert_repeats"] += 1
                return None
            _remember(self._events, adv.node_id, (adv.boot_id, adv.seq))
        else:
            last = self._heartbeats.get(adv.node_id)
            if last is not None and last[0] == adv.raw and now - last[1] < self._repeat_s:
                self._c["ble_advert_repeats"] += 1
                return None
            _remember(self._heartbeats, adv.node_id, (adv.raw, now))
        self._c["ble_adverts"] += 1
        # adverts carry no uptime; the pipeline's replay checks need one that moves on
        uptime = int((now - self._t0) * 1000) & 0xFFFFFFFF
        return Inbound(
            advert_message(adv, uptime),
            ADVERT_TRANSPORT,
            self.port,
            Clock.now_ms(),
            None,
            advert=adv,
            rssi=rssi,
        )


_K = TypeVar("_K")
_V = TypeVar("_V")


def _remember(table: OrderedDict[_K, _V], key: _K, value: _V) -> None:
    table[key] = value
    table.move_to_end(key)
    if len(table) > _REMEMBERED:
        table.popitem(last=False)
