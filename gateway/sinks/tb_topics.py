"""The topics of ThingsBoard's Gateway MQTT API this bridge uses (docs/thingsboard.md)."""

from __future__ import annotations

from typing import Final

CONNECT: Final = "v1/gateway/connect"
DISCONNECT: Final = "v1/gateway/disconnect"
ATTRIBUTES: Final = "v1/gateway/attributes"
ATTRIBUTES_REQUEST: Final = "v1/gateway/attributes/request"
ATTRIBUTES_RESPONSE: Final = "v1/gateway/attributes/response"
TELEMETRY: Final = "v1/gateway/telemetry"
RPC: Final = "v1/gateway/rpc"
ME_TELEMETRY: Final = "v1/devices/me/telemetry"
ME_ATTRIBUTES: Final = "v1/devices/me/attributes"
ME_RPC_REQUEST: Final = "v1/devices/me/rpc/request/"
ME_RPC_RESPONSE: Final = "v1/devices/me/rpc/response/"
