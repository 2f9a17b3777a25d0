"""The TOML configuration, validated once into typed models (docs/configuration.md).

``load_config`` returns a :class:`Config` or raises :class:`ConfigError` listing
every problem with its field path and a hint. Secrets may be given inline, in a
file (``*_file``) or in an environment variable (``*_env``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import string
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.errors import ConfigError
from gateway.model import parse_node_id
from gateway.paths import unwritable_file
from gateway.protocol.commands import GATEWAY_NAMES, SAFE_NAMES
from gateway.protocol.commands import NAMES as NODE_COMMAND_NAMES
from gateway.verify.specs import RUNTIMES

COMMAND_NAMES = (*NODE_COMMAND_NAMES, *GATEWAY_NAMES)


def _command_name(v: str) -> str:
    if v not in COMMAND_NAMES:
        raise ValueError(f"use one of {', '.join(repr(n) for n in COMMAND_NAMES)}")
    return v


CommandName = Annotated[str, AfterValidator(_command_name)]
SAFE_COMMANDS: list[str] = list(SAFE_NAMES)

_GATEWAY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOPIC_PREFIX = re.compile(r"^[^#+\x00]{1,64}$")


class _Strict(BaseModel):
    # Booleans and numbers are typed StrictBool / StrictInt / StrictFloat field by field:
    # a person writes this file, and "yes" or "30" in quotes is a mistake to report, not
    # to guess at. (A model-wide strict=True would also refuse strings as paths.)
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(inline: str | None, file: Path | None, env: str | None, what: str) -> str | None:
    given = [x for x in (inline, file, env) if x is not None]
    if len(given) > 1:
        raise ValueError(f"give only one of {what}, {what}_file and {what}_env")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"{what}_file {file}: {exc.strerror}") from None
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"{what}_env names {env}, which is not set")
        return value
    return inline


class GatewaySection(_Strict):
    id: str = "gateway"
    data_dir: Path = Path("/var/lib/tinyml-gateway")
    clock_check: str = "kernel"
    """How to tell whether the wall clock is synchronised: the kernel's NTP state
    (adjtimex), always, or "the file at this path exists" (e.g. systemd-timesyncd's
    /run/systemd/timesync/synchronized)."""

    @field_validator("clock_check")
    @classmethod
    def _clock(cls, v: str) -> str:
        if v not in ("kernel", "assume-synced") and not v.startswith("/"):
            raise ValueError('use "kernel", "assume-synced" or an absolute path to a flag file')
        return v

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _GATEWAY_ID.match(v):
            raise ValueError(
                "use 1 to 64 letters, digits, '-' or '_' (it is an MQTT topic segment)"
            )
        return v


class SerialSection(_Strict):
    path: str
    """A device path or a glob such as /dev/serial/by-id/* (rescanned while running)."""
    baudrate: Annotated[StrictInt, Field(gt=0, le=4_000_000)] = 115200
    reopen_max_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 30.0
    rescan_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 2.0


def _node_id_text(v: str) -> str:
    parse_node_id(v)
    return v


NodeIdText = Annotated[str, AfterValidator(_node_id_text)]


class NodeSection(_Strict):
    name: str | None = None
    group: str | None = None
    key: str | None = None
    key_file: Path | None = None
    key_env: str | None = None
    commands: list[CommandName] | None = None
    """Commands this node accepts; default: all."""

    @model_validator(mode="after")
    def _key(self) -> Self:
        raw = _read_secret(self.key, self.key_file, self.key_env, "key")
        if raw is not None:
            try:
                key = bytes.fromhex(raw)
            except ValueError:
                raise ValueError(
                    "key must be hexadecimal (e.g. from: openssl rand -hex 32)"
                ) from None
            if not 16 <= len(key) <= 64:
                raise ValueError(f"key is {len(key)} bytes; use 16 to 64 (32 recommended)")
            object.__setattr__(self, "_key_bytes", key)
        return self

    @property
    def key_bytes(self) -> bytes | None:
        return getattr(self, "_key_bytes", None)


class NodesSection(_Strict):
    unknown: Literal["accept", "reject"] = "accept"
    max_nodes: Annotated[StrictInt, Field(gt=0, le=100_000)] = 1000
    default_heartbeat_period_s: Annotated[StrictFloat, Field(gt=0, le=86_400)] = 60.0
    """Used until a node's INFO states its own period. Offline after 3 periods."""
    nodes: dict[NodeIdText, NodeSection] = {}

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        # [nodes."<id>"] tables sit beside the policy keys in TOML
        if not isinstance(data, dict):
            return data
        fields = set(cls.model_fields) - {"nodes"}
        policy = {k: v for k, v in data.items() if k in fields}
        policy["nodes"] = {k: v for k, v in data.items() if k not in fields}
        return policy


class TlsSection(_Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: StrictBool = False
    """Skip host name verification (self-signed test brokers only)."""

    @model_validator(mode="after")
    def _files(self) -> Self:
        for name in ("ca_file", "cert_file", "key_file"):
            p = getattr(self, name)
            if p is not None and not p.is_file():
                raise ValueError(f"{name} {p} does not exist")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give cert_file and key_file together")
        return self


class BrokerSection(_Strict):
    """What every MQTT connection of the gateway needs (Node-RED's broker, ThingsBoard)."""

    host: str = "localhost"
    port: Annotated[StrictInt, Field(gt=0, lt=65536)] = 1883
    protocol: Literal["3.1.1", "5"] = "5"
    client_id: str | None = None
    """Default: tinyml-gateway-<gateway.id> for Node-RED's broker, with "-thingsboard" added
    for ThingsBoard's."""
    tls: TlsSection | None = None
    max_inflight: Annotated[StrictInt, Field(ge=1, le=65535)] = 1000
    """Publishes awaiting PUBACK at once: a window of n carries at most n per round trip
    through the broker (docs/decisions.md); the broker's Receive Maximum caps it."""
    reconnect_max_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 60.0


class MqttSection(BrokerSection):
    enabled: StrictBool = True
    keepalive_s: Annotated[StrictInt, Field(ge=5, le=3600)] = 30
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    topic_prefix: str = "tinyml"
    commands: list[CommandName] = SAFE_COMMANDS
    """Commands Node-RED may send through this broker."""

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not _TOPIC_PREFIX.match(v) or v.startswith("/") or v.endswith("/"):
            raise ValueError("use a topic without wildcards and without a leading or trailing '/'")
        return v

    @model_validator(mode="after")
    def _secret(self) -> Self:
        pw = _read_secret(self.password, self.password_file, self.password_env, "password")
        object.__setattr__(self, "_password", pw)
        return self

    @property
    def password_value(self) -> str | None:
        return getattr(self, "_password", None)


_TEMPLATE_FIELDS = frozenset({"name", "id", "group", "gateway"})

TelemetryField = Literal[
    "label",
    "label_index",
    "score",
    "score_raw",
    "scores",
    "model_id",
    "inference_us",
    "window",
    "boot",
    "seq",
    "uptime_ms",
    "clock_synced",
    "key",
    "transport",
    "battery_mv",
    "temperature_c",
    "inferences",
    "events_dropped",
    "retx_floor",
    "rx_errors",
    "rssi",
    "log_level",
    "log_text",
    # verification (docs/verification.md): present when the gateway verifies events
    "verified",
    "unverified_reason",
    "gateway_label",
    "gateway_label_index",
    "gateway_score",
    "agreement",
    "verify_alert",
    "verify_kernels",
    "verify_model",
]
DEFAULT_TELEMETRY_FIELDS: list[TelemetryField] = [
    f for f in get_args(TelemetryField) if f not in ("window", "score_raw")
]


def parse_rate_limits(text: str) -> list[tuple[int, float]]:
    """ThingsBoard's "count:seconds[,count:seconds...]" form; "" means no limit."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        count, sep, seconds = part.partition(":")
        try:
            pair = (int(count), float(seconds))
        except ValueError:
            pair = (0, 0.0)
        if not sep or pair[0] < 0 or pair[1] < 0:
            raise ValueError(f'{part!r} is not count:seconds (e.g. "100:1,3000:60")')
        if pair[0] and pair[1]:  # ThingsBoard writes "0:0" for "no limit"
            out.append(pair)
    return out


class ThingsBoardSection(BrokerSection):
    enabled: StrictBool = False
    access_token: str | None = None
    access_token_file: Path | None = None
    access_token_env: str | None = None
    """Or tls.cert_file and tls.key_file and no token: X.509 device authentication."""
    keepalive_s: Annotated[StrictInt, Field(ge=5, le=3600)] = 60
    device_name: str = "{name}"
    """Placeholders: {name} (the node's configured name, else its id), {id}, {group}, {gateway}."""
    device_profile: str = "tinyml-node"
    telemetry_fields: list[TelemetryField] = DEFAULT_TELEMETRY_FIELDS
    max_payload_bytes: Annotated[StrictInt, Field(ge=1024, le=268_435_455)] = 65536
    batching: StrictBool = True
    """Many events, of many devices, per publish; false: one event per publish."""
    publish_budget: str = "200:1"
    """Most publishes per window, ThingsBoard's "count:seconds,..." form; "" for none."""
    server_limits_share: Annotated[StrictFloat, Field(gt=0, le=1)] = 0.8
    session_limits_wait_s: Annotated[StrictFloat, Field(ge=0, le=120)] = 10.0
    commands: list[CommandName] = SAFE_COMMANDS
    """Commands ThingsBoard RPC and shared attributes may send to nodes."""

    @field_validator("publish_budget")
    @classmethod
    def _budget(cls, v: str) -> str:
        parse_rate_limits(v)
        return v

    @field_validator("device_name")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(v) if f is not None}
        except ValueError as exc:
            raise ValueError(f"bad template: {exc}") from None
        unknown = names - _TEMPLATE_FIELDS
        if unknown or not names:
            raise ValueError(
                'use a template with {name}, {id}, {group} or {gateway}, e.g. "{gateway}-{name}"'
            )
        return v

    @model_validator(mode="after")
    def _credentials(self) -> Self:
        token = _read_secret(
            self.access_token, self.access_token_file, self.access_token_env, "access_token"
        )
        has_cert = self.tls is not None and self.tls.cert_file is not None
        if self.enabled and token is None and not has_cert:
            raise ValueError(
                "give the gateway device's access_token (or access_token_file or "
                "access_token_env), or tls.cert_file and tls.key_file for X.509"
            )
        object.__setattr__(self, "_token", token)
        return self

    @property
    def token_value(self) -> str | None:
        return getattr(self, "_token", None)


class OutboxSection(_Strict):
    path: Path | None = None
    """Default: <gateway.data_dir>/outbox.sqlite3"""
    max_size_mb: Annotated[StrictFloat, Field(gt=0)] = 1024.0
    max_age_h: Annotated[StrictFloat, Field(gt=0)] = 168.0
    sync: Literal["full", "normal"] = "full"
    """full: an acknowledged event survives a power cut; normal: a process crash only."""
    commit_interval_ms: Annotated[StrictInt, Field(ge=0, le=10_000)] = 10
    commit_max_events: Annotated[StrictInt, Field(ge=1, le=100_000)] = 2000
    check_interval_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 10.0
    """How often the size cap and the maximum age are applied."""


class LogSection(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["text", "json"] = "text"
    bad_input_interval_s: Annotated[StrictFloat, Field(ge=0)] = 60.0
    """One line per kind of bad input per source per interval; the rest are counted."""


class HealthSection(_Strict):
    interval_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 30.0
    watchdog: StrictBool = True
    """Ping systemd's watchdog when the unit sets WatchdogSec (while the pipeline is healthy)."""
    stall_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 60.0
    """A commit unfinished for this long makes the pipeline unhealthy: the watchdog pings
    stop, and systemd restarts the service WatchdogSec later."""


class MetricsSection(_Strict):
    """A Prometheus endpoint with the health counters and gauges (docs/metrics.md)."""

    enabled: StrictBool = False
    host: str = "127.0.0.1"
    """Where it listens; localhost unless the scraper is elsewhere (it has no auth)."""
    port: Annotated[StrictInt, Field(gt=0, lt=65536)] = 9108


class CommandsSection(_Strict):
    timeout_s: Annotated[StrictFloat, Field(gt=0, le=120)] = 8.0


_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODEL_ID = re.compile(r"^[0-9a-f]{8}$")
VerifyPolicy = Literal["annotate", "flag", "drop_disagreeing"]


class VerifyModelSection(_Strict):
    """One model the gateway runs (docs/verification.md)."""

    file: Path
    sha256: str
    """Of the file: checked at every start, so a swapped file is not run."""
    verifies: str | None = None
    """The model id (8 hex digits) of the node model this one checks, when it is a
    separate verifier with the same labels; default: this file's own id, i.e. the node
    runs this very model."""
    labels: list[str] | None = None
    """Label names, in output order; default: the names in the node's INFO."""
    input_dims: list[Annotated[StrictInt, Field(gt=0)]] | None = None
    """The window dims nodes send, checked against the model's input at start."""
    policy: VerifyPolicy = "annotate"
    kernels: Literal["reference", "fast"] = "reference"
    """reference: TFLM's kernels, for a parity check; fast: the runtime's optimised ones,
    for a model that is not a parity check (labelled so in every verdict)."""
    delegate: Literal["none", "edgetpu"] = "none"
    """edgetpu: run a compiled model on a Coral Edge TPU (libedgetpu; fast kernels only)."""

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _SHA256.match(v.lower()):
            raise ValueError("write the file's SHA-256 as 64 hex digits (from: sha256sum FILE)")
        return v.lower()

    @field_validator("verifies")
    @classmethod
    def _id(cls, v: str | None) -> str | None:
        if v is not None and not _MODEL_ID.match(v.lower()):
            raise ValueError("write the node model's id as 8 hex digits, as its events show it")
        return None if v is None else v.lower()

    @model_validator(mode="after")
    def _delegate(self) -> Self:
        if self.delegate != "none" and self.kernels == "reference":
            raise ValueError('a delegate runs its own kernels: set kernels = "fast" with it')
        return self


class VerifySection(_Strict):
    """Re-running the node's model on the gateway (docs/verification.md)."""

    enabled: StrictBool = False
    runtime: Literal["auto", "ai-edge-litert", "tflite-runtime"] = "auto"
    """auto: ai-edge-litert where it imports, else tflite-runtime."""
    max_wait_ms: Annotated[StrictInt, Field(ge=1, le=1000)] = 50
    """How long a batch's commit and ACKs wait for its verdicts at most; later ones are
    given up (the events go on unverified, counted)."""
    queue_size: Annotated[StrictInt, Field(ge=1, le=10_000)] = 256
    """Windows handed to the worker per batch at most; the rest go on unverified."""
    tolerance_steps: Annotated[StrictInt, Field(ge=0, le=255)] = 2
    """Logit steps below the gateway's top label within which the node's label cannot be
    told apart from it (no alert): two runtimes whose requantisation rounds one step
    apart differ by at most two steps between two labels (docs/verification.md)."""
    models: list[VerifyModelSection] = []
    groups: dict[str, VerifyPolicy] = {}
    """A policy per node group ([nodes."<id>"] group), over the model's own."""

    @model_validator(mode="before")
    @classmethod
    def _old_tolerance(cls, data: Any) -> Any:
        if isinstance(data, dict) and "tolerance_lsb" in data:
            raise ValueError(
                "tolerance_lsb (steps of the softmax output) is replaced by tolerance_steps, "
                "counted in steps of the logits: remove tolerance_lsb (the default "
                "tolerance_steps = 2 fits the reference kernels), docs/verification.md"
            )
        return data

    @model_validator(mode="after")
    def _models(self) -> Self:
        if self.enabled and not self.models:
            raise ValueError("verification is enabled with no model: add a [[verify.models]] table")
        return self


_ADAPTER = re.compile(r"^hci[0-9]{1,3}$")
_ADDRESS = re.compile(r"^[0-9A-F]{2}(:[0-9A-F]{2}){5}$")


class BleSection(_Strict):
    """Bluetooth Low Energy nodes through BlueZ (docs/ble.md)."""

    enabled: StrictBool = False
    adapter: str = "hci0"
    scanning: Literal["active", "passive"] = "active"
    connect: StrictBool = True
    """Connect to nodes that advertise the protocol's GATT service; false: adverts only."""
    allow: list[str] = []
    """Node ids (16 hex digits), addresses (AA:BB:CC:DD:EE:FF) or advertised names; empty:
    every node. Adverts of others, and connections to them, are ignored."""
    max_connections: Annotated[StrictInt, Field(ge=0, le=32)] = 4
    connect_timeout_s: Annotated[StrictFloat, Field(gt=0, le=300)] = 20.0
    call_timeout_s: Annotated[StrictFloat, Field(gt=0, le=300)] = 10.0
    """The outer limit on every BlueZ call (read, write, start notify, disconnect)."""
    backoff_max_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 60.0
    scanner_silence_s: Annotated[StrictFloat, Field(gt=0, le=86400)] = 90.0
    """No advertisement for this long restarts discovery."""
    adapter_reset_after: Annotated[StrictInt, Field(ge=0, le=100)] = 3
    """Failed discovery restarts before the adapter is power-cycled (0: never)."""
    heartbeat_repeat_s: Annotated[StrictFloat, Field(gt=0, le=3600)] = 60.0
    """An identical HEARTBEAT advert within this long is a repeat and dropped."""

    @field_validator("adapter")
    @classmethod
    def _adapter(cls, v: str) -> str:
        if not _ADAPTER.match(v):
            raise ValueError(f"{v!r} is not an adapter name such as hci0")
        return v

    @field_validator("allow")
    @classmethod
    def _allow(cls, v: list[str]) -> list[str]:
        for entry in v:
            if not entry.strip():
                raise ValueError("an empty entry matches nothing")
        return [e.upper() if _ADDRESS.match(e.upper()) else e for e in v]


class Config(_Strict):
    gateway: GatewaySection = GatewaySection()
    serial: list[SerialSection] = []
    ble: BleSection = BleSection()
    nodes: NodesSection = NodesSection()
    mqtt: MqttSection = MqttSection()
    thingsboard: ThingsBoardSection = ThingsBoardSection()
    outbox: OutboxSection = OutboxSection()
    log: LogSection = LogSection()
    health: HealthSection = HealthSection()
    metrics: MetricsSection = MetricsSection()
    commands: CommandsSection = CommandsSection()
    verify: VerifySection = VerifySection()

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or self.gateway.data_dir / "outbox.sqlite3"

    @property
    def nodered_client_id(self) -> str:
        return self.mqtt.client_id or f"tinyml-gateway-{self.gateway.id}"

    @property
    def thingsboard_client_id(self) -> str:
        # its own default: two sessions with one id on one broker would have the broker
        # take each over from the other, again and again
        return self.thingsboard.client_id or f"tinyml-gateway-{self.gateway.id}-thingsboard"


def _session_problems(cfg: Config) -> list[tuple[str, str, str]]:
    """What the models cannot see field by field: the two bridges' sessions on one broker."""
    mqtt, tb = cfg.mqtt, cfg.thingsboard
    same_broker = (mqtt.host.lower(), mqtt.port) == (tb.host.lower(), tb.port)
    if (
        mqtt.enabled
        and tb.enabled
        and same_broker
        and cfg.nodered_client_id == cfg.thingsboard_client_id
    ):
        return [
            (
                "thingsboard.client_id",
                f"{tb.client_id!r} is also the Node-RED bridge's client id on the same broker"
                f" ({tb.host}:{tb.port}), which would disconnect one session whenever the other"
                " connects",
                "give each bridge its own client_id, or remove both to use the defaults",
            )
        ]
    return []


_HINTS = {
    "extra_forbidden": "unknown option: check its spelling against packaging/config.example.toml",
    "missing": "this option is required",
    "literal_error": "",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number, without quotes",
    "float_parsing": "write a number",
    "float_type": "write a number, without quotes",
    "bool_type": "write true or false, without quotes",
    "bool_parsing": "write true or false",
    "string_type": 'write a quoted string, e.g. "value"',
    "greater_than": "",
    "less_than_equal": "",
}


def _problems(exc: ValidationError) -> list[tuple[str, str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if p != "[key]"]
        if loc[:2] == ["nodes", "nodes"]:  # the [nodes."<id>"] tables, as the user wrote them
            loc = loc[1:]
        path = ".".join(loc) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        hint = _HINTS.get(err["type"], "")
        if loc == ["serial"] and err["type"] == "list_type":
            hint = "write [[serial]] (two brackets), one such table per port"
        out.append((path, msg, hint))
    return out


def parse_config(data: dict[str, Any]) -> Config:
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_problems(exc)) from None
    if problems := _session_problems(cfg):
        raise ConfigError(problems)
    return cfg


def load_config(path: Path) -> Config:
    """Reads and validates ``path``; raises ConfigError naming every bad field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([(str(path), f"cannot read: {exc.strerror}", "check the path")]) from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            [
                (
                    str(path),
                    f"not UTF-8 text: byte 0x{exc.object[exc.start]:02x} on line {line}",
                    "save the file as UTF-8 (TOML files are UTF-8)",
                )
            ]
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            [(str(path), f"not valid TOML: {exc}", "fix the syntax at that line")]
        ) from None
    return parse_config(data)


def dependency_problems(cfg: Config) -> list[tuple[str, str, str]]:
    """Optional parts the configuration turns on whose libraries are not installed.

    Looked up without importing them: a configuration without BLE never loads bleak.
    """
    out = []
    if cfg.ble.enabled and importlib.util.find_spec("bleak") is None:
        out.append(
            (
                "ble.enabled",
                "BLE needs bleak, which is not installed",
                "install the ble extra: pip install 'tinyml-gateway[ble]' (or set enabled = false)",
            )
        )
    if cfg.metrics.enabled and importlib.util.find_spec("prometheus_client") is None:
        out.append(
            (
                "metrics.enabled",
                "the metrics endpoint needs prometheus-client, which is not installed",
                "install the metrics extra: pip install 'tinyml-gateway[metrics]' "
                "(or set enabled = false)",
            )
        )
    if cfg.verify.enabled and not verify_runtime_found(cfg.verify.runtime):
        out.append(
            (
                "verify.enabled",
                "verification needs ai-edge-litert or tflite-runtime, and numpy"
                if cfg.verify.runtime == "auto"
                else f"verify.runtime {cfg.verify.runtime} is not installed",
                "install the verify extra: pip install 'tinyml-gateway[verify]' "
                "(or set enabled = false)",
            )
        )
    return out


def verify_runtime_found(runtime: str = "auto") -> bool:
    """Whether numpy and the runtime (for "auto": either) are installed, without importing."""
    wanted = RUNTIMES.values() if runtime == "auto" else [RUNTIMES[runtime]]
    return importlib.util.find_spec("numpy") is not None and any(
        importlib.util.find_spec(m) is not None for m in wanted
    )


def storage_problems(cfg: Config) -> list[tuple[str, str, str]]:
    """Where the gateway writes, checked for the user who runs this (check-config and run).

    Not part of validation: it looks at the disk, and the same file may be
    checked on one machine and used on another.
    """
    field = "outbox.path" if cfg.outbox.path else "gateway.data_dir"
    problem = unwritable_file(cfg.outbox_path, field)
    return [] if problem is None else [(field, *problem)]
