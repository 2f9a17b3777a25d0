"""The one table of node commands (docs/protocol.md 4.5): names, codes, arguments.

Everything else derives from it: the names a configuration may allow
(``config.py``), the arguments the command router encodes (``commands.py``), what
the simulated node decodes (``sim/node.py``) and which ThingsBoard shared
attribute sets which command (``sinks/thingsboard.py``). Pure: no I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Final

from gateway.protocol.constants import SCORE_SCALE, CommandCode


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str  # the method name in {"id", "method", "params"}
    code: CommandCode
    param: str | None = None  # its one parameter, if it takes one
    wire: str = ""  # struct format of the argument ("" when none)
    low: int = 0  # the argument's range on the wire
    high: int = 0
    scale: int | None = None  # params value * scale = wire value (a 0..1 fraction)
    shared_attribute: str | None = None  # the ThingsBoard shared attribute that sets it
    safe: bool = False  # allowed by default: it changes nothing on the node

    def encode(self, params: Any) -> bytes:
        """The COMMAND's argument bytes; raises ValueError naming the bad parameter."""
        if self.param is None:
            return b""
        value = _param(params, self.param)
        if self.scale is not None:
            number = float(value)
            if not 0.0 <= number <= 1.0:
                raise ValueError(f"{self.param} must be between 0 and 1")
            return struct.pack(self.wire, round(number * self.scale))
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{self.param} must be a whole number")
        if not self.low <= value <= self.high:
            raise ValueError(f"{self.param} must be from {self.low} to {self.high}")
        return struct.pack(self.wire, value)

    def decode(self, args: bytes) -> int | None:
        """The argument as the node reads it (wire units), or None when it is malformed."""
        if self.param is None:
            return None if args else 0
        if len(args) != struct.calcsize(self.wire):
            return None
        value: int = struct.unpack(self.wire, args)[0]
        return value if self.low <= value <= self.high else None


def _param(params: Any, name: str) -> Any:
    if isinstance(params, dict) and name in params:
        return params[name]
    if not isinstance(params, dict) and params is not None:
        return params  # a bare value, as ThingsBoard's RPC debug terminal sends
    raise ValueError(f"missing parameter {name!r}")


COMMANDS: Final = (
    CommandSpec("ping", CommandCode.PING, safe=True),
    CommandSpec("get_info", CommandCode.GET_INFO, safe=True),
    CommandSpec(
        "set_threshold",
        CommandCode.SET_THRESHOLD,
        "threshold",
        "<H",
        0,
        SCORE_SCALE,
        scale=SCORE_SCALE,
        shared_attribute="threshold",
    ),
    CommandSpec(
        "set_sample_rate",
        CommandCode.SET_SAMPLE_RATE,
        "hz",
        "<I",
        1,
        0xFFFFFFFF,
        shared_attribute="sample_rate_hz",
    ),
    CommandSpec(
        "set_heartbeat_period",
        CommandCode.SET_HEARTBEAT_PERIOD,
        "seconds",
        "<H",
        1,
        0xFFFF,
        shared_attribute="heartbeat_period_s",
    ),
    CommandSpec("reboot", CommandCode.REBOOT),
)
BY_NAME: Final = {c.name: c for c in COMMANDS}
BY_CODE: Final[dict[int, CommandSpec]] = {int(c.code): c for c in COMMANDS}
BY_SHARED_ATTRIBUTE: Final = {c.shared_attribute: c for c in COMMANDS if c.shared_attribute}
NAMES: Final = tuple(BY_NAME)
# methods the gateway answers itself, never sent to a node: "forget" clears the node's
# stored state (docs/protocol.md 2.1). Allowed only where a configuration lists it.
GATEWAY_NAMES: Final = ("forget",)
SAFE_NAMES: Final = tuple(c.name for c in COMMANDS if c.safe)
