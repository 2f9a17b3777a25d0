"""Every class of configuration error names its field and a fix; the CLI exits 78 on them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import load_config, parse_config, storage_problems
from gateway.errors import ConfigError, OutboxError
from gateway.outbox import Outbox

ROOT = Path(__file__).resolve().parent.parent
KEY = "00112233445566778899aabbccddeeff"


def problems(data: dict) -> list[tuple[str, str, str]]:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    return info.value.problems


@pytest.mark.parametrize(
    ("data", "path", "words"),
    [
        ({"bogus": 1}, "bogus", "unknown option"),
        ({"mqtt": {"hots": "x"}}, "mqtt.hots", "spelling"),
        ({"mqtt": {"port": "x"}}, "mqtt.port", "whole number"),
        ({"mqtt": {"port": 70000}}, "mqtt.port", "less than 65536"),
        ({"mqtt": {"protocol": "4"}}, "mqtt.protocol", "'3.1.1' or '5'"),
        ({"mqtt": {"topic_prefix": "a/#"}}, "mqtt.topic_prefix", "wildcards"),
        ({"mqtt": {"commands": ["explode"]}}, "mqtt.commands.0", "'ping'"),
        ({"mqtt": {"password": "a", "password_env": "B"}}, "mqtt", "only one of"),
        ({"mqtt": {"password_env": "TINYML_SURELY_UNSET"}}, "mqtt", "not set"),
        ({"mqtt": {"password_file": "/nonexistent/pw"}}, "mqtt", "password_file"),
        ({"mqtt": {"tls": {"ca_file": "/nonexistent/ca.pem"}}}, "mqtt.tls", "does not exist"),
        ({"gateway": {"id": "has space"}}, "gateway.id", "letters, digits"),
        ({"gateway": {"clock_check": "ntp"}}, "gateway.clock_check", "absolute path"),
        ({"serial": [{"baudrate": 9600}]}, "serial.0.path", "required"),
        ({"serial": [{"path": "/dev/x", "baudrate": 0}]}, "serial.0.baudrate", "greater than 0"),
        ({"serial": {"path": "/dev/x"}}, "serial", "write [[serial]]"),
        ({"mqtt": {"enabled": "yes"}}, "mqtt.enabled", "true or false, without quotes"),
        ({"mqtt": {"enabled": 1}}, "mqtt.enabled", "true or false"),
        ({"thingsboard": {"batching": "false"}}, "thingsboard.batching", "true or false"),
        ({"mqtt": {"port": "1883"}}, "mqtt.port", "whole number, without quotes"),
        ({"mqtt": {"max_inflight": 10.0}}, "mqtt.max_inflight", "whole number"),
        ({"outbox": {"max_age_h": "24"}}, "outbox.max_age_h", "a number, without quotes"),
        ({"health": {"watchdog": "on"}}, "health.watchdog", "true or false"),
        ({"nodes": {"unknown": "maybe"}}, "nodes.unknown", "'accept' or 'reject'"),
        ({"nodes": {"max_nodes": -1}}, "nodes.max_nodes", "greater than 0"),
        ({"nodes": {"XYZ": {}}}, "nodes.XYZ", "16 lowercase hex"),
        ({"nodes": {"0000000000000000": {}}}, "nodes.0000000000000000", "reserved"),
        ({"nodes": {"a1b2c3d4e5f60718": {"key": "zz"}}}, "nodes.a1b2c3d4e5f60718", "hexadecimal"),
        ({"nodes": {"a1b2c3d4e5f60718": {"key": "00"}}}, "nodes.a1b2c3d4e5f60718", "16 to 64"),
        (
            {"nodes": {"a1b2c3d4e5f60718": {"key_file": "/nonexistent"}}},
            "nodes.a1b2c3d4e5f60718",
            "key_file",
        ),
        ({"nodes": {"a1b2c3d4e5f60718": {"name": 5}}}, "nodes.a1b2c3d4e5f60718.name", "string"),
        ({"outbox": {"sync": "sometimes"}}, "outbox.sync", "'full' or 'normal'"),
        ({"outbox": {"max_size_mb": 0}}, "outbox.max_size_mb", "greater than 0"),
        ({"log": {"level": "loud"}}, "log.level", "'debug'"),
        ({"commands": {"timeout_s": 0}}, "commands.timeout_s", "greater than 0"),
    ],
)
def test_each_error_names_the_field_and_the_fix(data: dict, path: str, words: str) -> None:
    found = problems(data)
    assert any(p == path and words in (m + " " + h) for p, m, h in found), found


def test_all_problems_are_reported_at_once() -> None:
    found = problems({"mqtt": {"port": 0, "protocol": "9"}, "nodes": {"unknown": "x"}})
    assert {p for p, _, _ in found} == {"mqtt.port", "mqtt.protocol", "nodes.unknown"}


def test_both_bridges_on_one_broker_need_two_client_ids() -> None:
    tb = {"enabled": True, "access_token": "T"}
    # the defaults differ, so a broker serving both bridges keeps both sessions
    cfg = parse_config({"thingsboard": tb})
    assert cfg.nodered_client_id == "tinyml-gateway-gateway"
    assert cfg.thingsboard_client_id == "tinyml-gateway-gateway-thingsboard"
    same = {"mqtt": {"client_id": "gw1"}, "thingsboard": {**tb, "client_id": "gw1"}}
    found = problems(same)
    assert [p for p, _, _ in found] == ["thingsboard.client_id"]
    assert "its own client_id" in found[0][2]
    assert "localhost:1883" in found[0][1]
    # on two brokers, or with a bridge off, one id is no conflict
    parse_config({**same, "thingsboard": {**same["thingsboard"], "port": 8883}})
    parse_config({**same, "mqtt": {"client_id": "gw1", "enabled": False}})


def test_secrets_from_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    (tmp_path / "key").write_text(KEY + "\n")
    monkeypatch.setenv("NODE_KEY", KEY)
    cfg = parse_config(
        {
            "mqtt": {"password_file": str(tmp_path / "pw")},
            "nodes": {
                "a1b2c3d4e5f60718": {"key_file": str(tmp_path / "key")},
                "a1b2c3d4e5f60719": {"key_env": "NODE_KEY"},
            },
        }
    )
    assert cfg.mqtt.password_value == "s3cret"
    assert cfg.nodes.nodes["a1b2c3d4e5f60718"].key_bytes == bytes.fromhex(KEY)
    assert cfg.nodes.nodes["a1b2c3d4e5f60719"].key_bytes == bytes.fromhex(KEY)


def test_example_config_is_valid_and_documents_every_option() -> None:
    example = ROOT / "packaging" / "config.example.toml"
    load_config(example)
    text = example.read_text()
    from gateway.config import Config

    def options(model: type, prefix: str = "") -> set[str]:
        out = set()
        for name, f in model.model_fields.items():
            ann = f.annotation
            sub = getattr(ann, "model_fields", None)
            if sub is not None:
                out |= options(ann, prefix)
            elif name not in {"nodes", "serial"}:
                out.add(name)
        return out

    missing = {o for o in options(Config) if o not in text}
    assert missing == set()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], capture_output=True, text=True, timeout=60
    )


def test_check_config_exits_78_listing_every_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[mqtt]\nport = "x"\n[nodes]\nunknown = "maybe"\n')
    r = _cli("check-config", str(bad))
    assert r.returncode == 78
    assert "mqtt.port" in r.stderr and "nodes.unknown" in r.stderr and "hint" in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_toml_syntax_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mqtt\nport = 1\n")
    r = _cli("check-config", str(bad))
    assert r.returncode == 78 and "line 1" in r.stderr and "Traceback" not in r.stderr


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    r = _cli("check-config", str(tmp_path / "none.toml"))
    assert r.returncode == 78 and "cannot read" in r.stderr


def test_run_refuses_a_bad_config_with_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[outbox]\nsync = 'sometimes'\n")
    r = _cli("run", "-c", str(bad))
    assert r.returncode == 78 and "outbox.sync" in r.stderr and "Traceback" not in r.stderr


def test_version() -> None:
    r = _cli("version")
    assert r.returncode == 0 and r.stdout.startswith("tinyml-gateway ")


def test_version_option() -> None:
    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("tinyml-gateway ")


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('[gateway]\nid = "gw"\n# caf\xe9\n'.encode("latin-1"))
    r = _cli("check-config", str(bad))
    assert r.returncode == 78, r.stderr
    assert "not UTF-8" in r.stderr and "line 3" in r.stderr and "save the file as UTF-8" in r.stderr
    assert "Traceback" not in r.stderr


def _with_data_dir(tmp: Path, data_dir: Path) -> Path:
    path = tmp / "gateway.toml"
    path.write_text(f'[gateway]\ndata_dir = "{data_dir}"\n[mqtt]\nenabled = false\n')
    return path


def test_a_data_dir_that_is_a_file_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("oops")
    config = _with_data_dir(tmp_path, tmp_path / "data")
    for args in (["check-config", str(config)], ["run", "-c", str(config)]):
        r = _cli(*args)
        assert r.returncode == 78, r.stderr
        assert "gateway.data_dir" in r.stderr and "is a file, not a folder" in r.stderr
        assert "Traceback" not in r.stderr


@contextlib.contextmanager
def read_only_view(source: Path, where: Path) -> Iterator[Path]:
    """A read-only bind mount of ``source`` (a read-only filesystem, even for root)."""
    where.mkdir()
    r = subprocess.run(["mount", "--bind", str(source), str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.fail(
            f"a bind mount is needed to test a read-only filesystem (run as root): {r.stderr}"
        )
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], check=True)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_read_only_data_dir_is_not_called_a_damaged_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    healthy = Outbox(data / "outbox.sqlite3", max_size_bytes=10**8, max_age_ms=10**9)
    await healthy.open(["mqtt"])
    await healthy.close()
    before = (data / "outbox.sqlite3").read_bytes()
    with read_only_view(data, tmp_path / "ro") as ro:
        config = _with_data_dir(tmp_path, ro)
        r = _cli("check-config", str(config))
        assert r.returncode == 78
        assert "gateway.data_dir" in r.stderr and "read-only filesystem" in r.stderr
        assert "remount it read-write" in r.stderr
        # the outbox itself, opened without the check, tells the same story
        outbox = Outbox(ro / "outbox.sqlite3", max_size_bytes=10**8, max_age_ms=10**9)
        with pytest.raises(OutboxError) as info:
            await outbox.open(["mqtt"])
        await outbox.close()
    message = str(info.value)
    assert "read-only filesystem" in message and "not damaged" in message
    assert "not a usable SQLite database" not in message and "move it aside" not in message
    assert (data / "outbox.sqlite3").read_bytes() == before


def test_a_data_dir_the_user_cannot_write_fails_the_check(tmp_path: Path) -> None:
    """Checked as user nobody, in a forked child: root may write anywhere."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to another user")
    base = Path(tempfile.mkdtemp(prefix="tinyml-perm-"))  # /tmp: nobody can reach it
    try:
        base.chmod(0o755)
        (base / "data").mkdir(mode=0o755)  # root's folder: nobody may not write in it
        cfg = load_config(_with_data_dir(tmp_path, base / "data"))
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: become nobody, check, report, leave
            try:
                os.setgid(65534)
                os.setuid(65534)
                os.write(write, json.dumps(storage_problems(cfg)).encode())
            finally:
                os._exit(0)
        os.close(write)
        with os.fdopen(read) as f:
            found = json.loads(f.read() or "null")
        os.waitpid(pid, 0)
        as_root = storage_problems(cfg)
    finally:
        shutil.rmtree(base)
    assert as_root == []
    assert found is not None and len(found) == 1
    field, message, hint = found[0]
    assert field == "gateway.data_dir"
    assert "cannot be written by nobody (uid 65534)" in message
    assert "chown or chmod" in hint


def test_ble_without_the_ble_extra_exits_78_naming_it(tmp_path: Path) -> None:
    """bleak hidden from the import system, as on a machine without the extra."""
    cfg = tmp_path / "ble.toml"
    cfg.write_text(f'[gateway]\ndata_dir = "{tmp_path}"\n[ble]\nenabled = true\n')
    hide = (
        "import importlib.util as u, sys; real = u.find_spec; "
        "u.find_spec = lambda n, *a: None if n.split('.')[0] == 'bleak' else real(n, *a); "
        "from gateway.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    for command in ("check-config", "run"):
        args = [command, str(cfg)] if command == "check-config" else [command, "-c", str(cfg)]
        r = subprocess.run(
            [sys.executable, "-c", hide, *args], capture_output=True, text=True, timeout=60
        )
        assert r.returncode == 78, r.stderr
        assert "ble.enabled" in r.stderr and "tinyml-gateway[ble]" in r.stderr
        assert "Traceback" not in r.stderr


def test_a_configuration_without_ble_never_imports_bleak(tmp_path: Path) -> None:
    code = (
        "import asyncio, sys\n"
        "from gateway.config import parse_config\n"
        "from gateway.service import build\n"
        f"cfg = parse_config({{'gateway': {{'data_dir': {str(tmp_path)!r}}}, "
        "'mqtt': {'enabled': False}})\n"
        "gw = asyncio.run(build(cfg))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('bleak', 'dbus_fast')))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_bad_ble_options_name_their_fields() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"ble": {"adapter": "bluetooth0", "allow": [" "], "max_connections": -1}})
    fields = {p[0] for p in info.value.problems}
    assert fields == {"ble.adapter", "ble.allow", "ble.max_connections"}
