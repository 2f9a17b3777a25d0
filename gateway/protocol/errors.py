"""Why a frame or message was refused. Each reason is also a counter name."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    BAD_COBS = "bad_cobs"
    BAD_CRC = "bad_crc"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    BAD_PAYLOAD = "bad_payload"
    BAD_FRAGMENT = "bad_fragment"
    BAD_ADVERT = "bad_advert"


class ProtocolError(ValueError):
    """Raised by the pure decoders; the stream decoders count it instead."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
