"""Structured logging to journald over its native protocol (gateway/journal.py).

No journald runs here: a datagram socket bound by the test stands in for
/run/systemd/journal/socket, and the entries are parsed as journald parses them
(systemd's native protocol: KEY=value lines, and a length-prefixed binary form for
values with newlines)."""

from __future__ import annotations

import io
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from gateway import journal

ROOT = Path(__file__).resolve().parent.parent


def parse(datagram: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    i = 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            out[key.decode()] = value.decode()
            i = nl + 1
        else:  # KEY \n u64le length, value, \n
            (size,) = struct.unpack("<Q", datagram[nl + 1 : nl + 9])
            out[line.decode()] = datagram[nl + 9 : nl + 9 + size].decode()
            i = nl + 9 + size + 1
    return out


def test_wanted_only_when_journal_stream_names_stderr(tmp_path: Path) -> None:
    with open(tmp_path / "err", "w") as err, open(tmp_path / "other", "w") as other:
        st = os.fstat(err.fileno())
        assert journal.wanted({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, err)
        assert not journal.wanted({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, other)
        assert not journal.wanted({}, err)
        assert not journal.wanted({"JOURNAL_STREAM": "garbage"}, err)
    assert not journal.wanted({"JOURNAL_STREAM": "1:2"}, io.StringIO())


def test_entries_carry_node_source_sink_and_priority(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    fallback = logging.StreamHandler(io.StringIO())
    handler = journal.JournalHandler(fallback, path)
    try:
        record = logging.LogRecord(
            "gateway.input", logging.WARNING, __file__, 7,
            "refused a message from node %s on %s: bad tag", ("000000000000a300", "/dev/ttyACM0"), None,
        )  # fmt: skip
        handler.handle(record)
        entry = parse(server.recv(65536))
        assert entry["MESSAGE"] == (
            "refused a message from node 000000000000a300 on /dev/ttyACM0: bad tag"
        )
        assert entry["PRIORITY"] == "4" and entry["SYSLOG_IDENTIFIER"] == "tinyml-gateway"
        assert entry["NODE_ID"] == "000000000000a300" and entry["SOURCE"] == "/dev/ttyACM0"
        assert entry["LOGGER"] == "gateway.input" and entry["CODE_LINE"] == "7"
        record = logging.LogRecord(
            "gateway.sinks.mqtt", logging.ERROR, __file__, 9, "mqtt: refused\nsecond line", (), None
        )
        handler.handle(record)
        entry = parse(server.recv(65536))
        assert entry["MESSAGE"] == "mqtt: refused\nsecond line"  # the binary form
        assert entry["SINK"] == "mqtt" and entry["PRIORITY"] == "3" and "NODE_ID" not in entry
    finally:
        handler.close()
        server.close()


def test_without_a_journald_the_lines_go_to_stderr(tmp_path: Path) -> None:
    stream = io.StringIO()
    fallback = logging.StreamHandler(stream)
    handler = journal.JournalHandler(fallback, str(tmp_path / "absent.sock"))
    handler.handle(logging.LogRecord("gateway", logging.INFO, __file__, 1, "hello", (), None))
    handler.close()
    assert stream.getvalue() == "hello\n"


def test_the_gateway_under_journal_stream_without_journald_still_logs(tmp_path: Path) -> None:
    """JOURNAL_STREAM set as systemd sets it, on a machine whose journald socket is absent
    (this one): the running gateway's lines arrive on stderr, whole, with no traceback."""
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw"\ndata_dir = "{tmp_path / "data"}"\n'
        'clock_check = "assume-synced"\n[mqtt]\nenabled = false\n'
    )
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "-c", str(config)],
            cwd=ROOT, env=env, stderr=err, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            while "ready in" not in err_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    text = err_path.read_text()
    assert "ready in" in text and text.rstrip().endswith("stopped") and "Traceback" not in text
