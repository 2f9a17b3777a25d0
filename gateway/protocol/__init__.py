"""Wire protocol v1, gateway side: pure codec, framing, fragments, adverts, sequence state.

Nothing in this package does I/O, uses asyncio or imports a third-party
package; ``docs/protocol.md`` is the specification and the C header in
``mcu_firmware/protocol/include/tgw_protocol.h`` the source of its constants.
"""

from gateway.protocol.advert import (
    Advert,
    advert_message,
    decode_advert,
    encode_advert,
    verify_advert,
)
from gateway.protocol.constants import (
    Capability,
    CommandCode,
    LogLevel,
    MsgType,
    Status,
)
from gateway.protocol.errors import ProtocolError, Reason
from gateway.protocol.fragments import Reassembler, fragment
from gateway.protocol.framing import FrameDecoder, encode_frame, unframe
from gateway.protocol.messages import (
    Ack,
    Body,
    Command,
    CommandAck,
    Event,
    FeatureWindow,
    Header,
    Heartbeat,
    Info,
    Log,
    Message,
    decode,
    encode,
    model_id,
    verify,
)
from gateway.protocol.sequence import Arrival, SequenceState

__all__ = [
    "Ack",
    "Advert",
    "Arrival",
    "Body",
    "Capability",
    "Command",
    "CommandAck",
    "CommandCode",
    "Event",
    "FeatureWindow",
    "FrameDecoder",
    "Header",
    "Heartbeat",
    "Info",
    "Log",
    "LogLevel",
    "Message",
    "model_id",
    "MsgType",
    "ProtocolError",
    "Reason",
    "Reassembler",
    "SequenceState",
    "Status",
    "decode",
    "advert_message",
    "decode_advert",
    "encode",
    "encode_advert",
    "encode_frame",
    "fragment",
    "unframe",
    "verify",
    "verify_advert",
]
