"""The ThingsBoard checker catches what the server would refuse: one bad payload per rule.

Each case starts from a session in which device "d" is connected, sends one publish
and expects exactly one violation naming the rule; the good cases expect none, so
a checker that flags everything fails too.
"""

from __future__ import annotations

import json

import pytest

from tests.tb_checker import DEFAULT_LIMITS, ThingsBoardChecker

TS = 1_790_000_000_000


def _session(limits: dict | None = None) -> ThingsBoardChecker:
    checker = ThingsBoardChecker(limits=limits)
    answer = checker.inspect(
        "v1/devices/me/rpc/request/1", b'{"method":"getSessionLimits","params":{}}'
    )
    assert answer and answer[0][0] == "v1/devices/me/rpc/response/1"
    checker.inspect("v1/gateway/connect", b'{"device":"d","type":"tinyml-node"}')
    assert checker.violations == []
    return checker


def _tel(values: object, ts: object = TS, device: str = "d") -> bytes:
    return json.dumps({device: [{"ts": ts, "values": values}]}).encode()


GOOD = [
    (
        "v1/gateway/telemetry",
        _tel({"score": 0.5, "label": "idle", "n": 3, "ok": True, "scores": [1]}),
    ),
    ("v1/gateway/telemetry", b'{"d":[{"a":1}]}'),  # no ts: the server stamps it
    ("v1/gateway/attributes", b'{"d":{"firmware_version":"1.0","online":true}}'),
    ("v1/gateway/attributes/request", b'{"id":1,"device":"d","client":false,"key":"threshold"}'),
    ("v1/gateway/disconnect", b'{"device":"d"}'),
    ("v1/devices/me/telemetry", b'{"uptime_s":1.5}'),
    ("v1/devices/me/attributes", b'{"version":"0.1"}'),
]

BAD = [
    ("v1/gateway/telemetri", b"{}", "not a topic the server accepts"),
    ("tinyml/gw/x", b"{}", "not a topic the server accepts"),
    ("v1/gateway/telemetry", b"{not json", "not JSON"),
    ("v1/gateway/telemetry", b'{"d":[{"ts":1790000000000,"values":{"x":NaN}}]}', "not JSON"),
    (
        "v1/gateway/telemetry",
        b'{"d":[{"ts":1790000000000,"values":{"x":1e999}}]}',
        "not a finite number",
    ),
    ("v1/gateway/telemetry", b'{"d":{"ts":1790000000000,"values":{"x":1}}}', "must be an array"),
    ("v1/gateway/telemetry", b"[1,2]", "object of devices"),
    ("v1/gateway/telemetry", _tel({"x": 1}, device="stranger"), "not connected in this session"),
    ("v1/gateway/telemetry", _tel({"x": 1}, ts="soon"), "not epoch milliseconds"),
    ("v1/gateway/telemetry", _tel({"x": 1}, ts=1_790_000_000), "not epoch milliseconds"),
    ("v1/gateway/telemetry", _tel({"": 1}), "is empty"),
    ("v1/gateway/telemetry", _tel({"k" * 256: 1}), "longer than"),
    ("v1/gateway/telemetry", _tel({"x": 1 << 64}), "big integer"),
    ("v1/gateway/telemetry", _tel([1, 2]), "values must be an object"),
    ("v1/gateway/telemetry", b'{"d":[7]}', "an entry must be an object"),
    ("v1/gateway/attributes", b'{"d":[1]}', "attributes must be an object"),
    ("v1/gateway/attributes", b'{"stranger":{"a":1}}', "not connected in this session"),
    ("v1/gateway/connect", b'{"name":"d"}', "connect needs"),
    ("v1/gateway/connect", b'{"device":""}', "bad device name"),
    ("v1/gateway/rpc", b'{"device":"d","id":99,"data":{}}', "reply to no RPC"),
    ("v1/gateway/rpc", b'{"device":"d","data":{}}', "an RPC reply is"),
    ("v1/gateway/attributes/request", b'{"device":"d","key":"x"}', "integer"),
    ("v1/gateway/attributes/request", b'{"id":1,"device":"d"}', 'needs "key" or "keys"'),
    ("v1/devices/me/rpc/response/5", b"{}", "answer to no RPC"),
    ("v1/devices/me/rpc/request/5", b"[]", "an RPC request is"),
    ("v1/gateway/disconnect", b'{"device":"stranger"}', "not connected in this session"),
]


@pytest.mark.parametrize(("topic", "payload"), GOOD)
def test_good_publishes_pass(topic: str, payload: bytes) -> None:
    checker = _session()
    checker.inspect(topic, payload)
    assert checker.violations == []


@pytest.mark.parametrize(("topic", "payload", "rule"), BAD)
def test_each_rule_catches_its_bad_payload(topic: str, payload: bytes, rule: str) -> None:
    checker = _session()
    checker.inspect(topic, payload)
    assert len(checker.violations) >= 1
    assert rule in checker.violations[0]


def test_an_overwritten_ts_is_caught_and_an_identical_resend_is_not() -> None:
    checker = _session()
    checker.inspect("v1/gateway/telemetry", _tel({"seq": 1}))
    checker.inspect("v1/gateway/telemetry", _tel({"seq": 1}))  # a re-send after a reconnect
    assert checker.violations == []
    assert checker.devices["d"].duplicates == 1
    checker.inspect("v1/gateway/telemetry", _tel({"seq": 2}))  # another event, same ms
    assert "overwrites" in checker.violations[0]


def test_oversize_payloads_are_caught() -> None:
    checker = _session({**DEFAULT_LIMITS, "maxPayloadSize": 100})
    checker.inspect("v1/gateway/telemetry", _tel({"text": "x" * 100}))
    assert "over maxPayloadSize" in checker.violations[0]


def test_a_broken_rate_limit_is_caught() -> None:
    limits = {**DEFAULT_LIMITS, "gatewayRateLimits": {"messages": "3:60"}}
    checker = _session(limits)  # its connect is the first of the three
    for i in range(2):
        checker.inspect("v1/gateway/telemetry", _tel({"n": i}, ts=TS + i))
    assert checker.violations == []
    checker.inspect("v1/gateway/telemetry", _tel({"n": 4}, ts=TS + 4))
    assert "rate limit" in checker.violations[0]


def test_device_data_point_limits_are_per_device() -> None:
    limits = {**DEFAULT_LIMITS, "rateLimits": {"telemetryDataPoints": "2:60"}}
    checker = _session(limits)
    checker.inspect("v1/gateway/connect", b'{"device":"e"}')
    checker.inspect("v1/gateway/telemetry", b'{"d":[{"a":1,"b":2}],"e":[{"a":1,"b":2}]}')
    assert checker.violations == []
    checker.inspect("v1/gateway/telemetry", b'{"d":[{"ts":1790000000001,"values":{"c":1}}]}')
    assert "rate limit" in checker.violations[0]


def test_a_new_session_needs_connects_again() -> None:
    checker = _session()
    checker.inspect("v1/devices/me/rpc/request/2", b'{"method":"getSessionLimits","params":{}}')
    checker.inspect("v1/gateway/telemetry", _tel({"x": 1}))
    assert "not connected in this session" in checker.violations[0]


def test_attribute_requests_are_answered_like_the_server() -> None:
    checker = _session()
    checker.shared["d"] = {"threshold": 0.5, "sample_rate_hz": 50}
    one = checker.inspect(
        "v1/gateway/attributes/request", b'{"id":1,"device":"d","key":"threshold"}'
    )
    both = checker.inspect(
        "v1/gateway/attributes/request",
        b'{"id":2,"device":"d","keys":["threshold","sample_rate_hz","missing"]}',
    )
    assert json.loads(one[0][1]) == {"id": 1, "device": "d", "value": 0.5}
    assert json.loads(both[0][1])["values"] == {"threshold": 0.5, "sample_rate_hz": 50}
