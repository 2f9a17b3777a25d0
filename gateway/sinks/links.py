"""From the configuration to the MQTT links the two bridges connect with."""

from __future__ import annotations

from gateway.config import Config, MqttSection, ThingsBoardSection
from gateway.sinks.mqtt import MqttLink


def nodered_link(cfg: Config) -> MqttLink:
    return _link(cfg.mqtt, cfg.nodered_client_id, cfg.mqtt.username, cfg.mqtt.password_value)


def thingsboard_link(cfg: Config) -> MqttLink:
    # ThingsBoard: the access token is the user name, with no password
    return _link(cfg.thingsboard, cfg.thingsboard_client_id, cfg.thingsboard.token_value, None)


def _link(
    section: MqttSection | ThingsBoardSection,
    client_id: str,
    username: str | None,
    password: str | None,
) -> MqttLink:
    tls = section.tls
    return MqttLink(
        host=section.host,
        port=section.port,
        protocol=section.protocol,
        client_id=client_id,
        keepalive_s=section.keepalive_s,
        username=username,
        password=password,
        ca_file=str(tls.ca_file) if tls and tls.ca_file else None,
        cert_file=str(tls.cert_file) if tls and tls.cert_file else None,
        key_file=str(tls.key_file) if tls and tls.key_file else None,
        tls_insecure=bool(tls and tls.insecure),
        max_inflight=section.max_inflight,
        reconnect_max_s=section.reconnect_max_s,
    )
