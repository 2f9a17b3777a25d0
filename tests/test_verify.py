"""Verification end to end, and what it does with bad input (docs/verification.md).

The real gateway reads simulated nodes on real ptys, runs the shipped model with the
real runtime (ai-edge-litert, reference kernels) and publishes to a real Mosquitto
and the ThingsBoard checker. The simulated nodes send held-out BasicMotions windows
with TFLM's labels, and known events carry a fault (gateway/sim/node.py fault_of):
exactly those must disagree.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.model import RecordKind, node_hex
from gateway.protocol import Ack, FeatureWindow, decode
from gateway.service import build
from gateway.sim.dataset import dataset
from gateway.sim.link import NodeRunner
from gateway.sim.node import (
    LABELS,
    MODEL_ID,
    Fault,
    SimulatedNode,
    expected_event,
    fault_of,
    window_index,
)
from gateway.verify.registry import ModelEntry, check_models
from tests.peers import config_data, env_without_coverage, gateway_config, running, toml_text
from tests.test_ingest_state import _inbound, _until, own_ingest
from tests.test_thingsboard import tb_section
from tests.verify_parity import MODEL_DIR, meta

FLAGGED, PLAIN, STRICT, BLIND, STRANGER, CHECKED = 0xF100, 0xF200, 0xF300, 0xF400, 0xF500, 0xF600
OTHER_MODEL = 0x0A0B0C0D  # a node model the gateway checks with a separate verifier
COUNT = 60
CORRUPT, WRONG = 150, 100  # per mille


def model(**over: Any) -> dict[str, Any]:
    return {"file": str(MODEL_DIR / "model.tflite"), "sha256": meta()["sha256"], **over}


def verify_section(**over: Any) -> dict[str, Any]:
    # a generous wait: on a loaded machine a slow batch must not turn into "late" verdicts
    return {"enabled": True, "max_wait_ms": 1000, "models": [model()], **over}


@dataclasses.dataclass(slots=True)
class OtherModelNode(SimulatedNode):
    """Reports another model id: one the gateway has no entry for, or a verifier's."""

    model_id: int = 0xDEADBEEF

    def event(self, uptime_ms: int) -> bytes:
        SimulatedNode.event(self, uptime_ms)
        e = expected_event(self.node_id, self.seq, window=True)
        raw = self._encode(dataclasses.replace(e, model_id=self.model_id), uptime_ms, self.seq)
        self.ring[-1].raw = raw
        return raw


def _faulty(node: int, seq: int) -> Fault | None:
    return fault_of(node, seq, CORRUPT, WRONG)


def _gateway_label(node: int, seq: int) -> int:
    """What TFLM says of the window the node sent."""
    i = window_index(node, seq)
    corrupted = _faulty(node, seq) is Fault.CORRUPTED
    return (dataset().corrupted if corrupted else dataset().held_out)[i].label


async def test_policies_end_to_end_through_both_bridges(
    tmp_path: Path, bridges, pty, caplog: pytest.LogCaptureFixture
) -> None:
    nodered, tb, checker, sub = bridges
    link = pty()
    faults = {"corrupt_permille": CORRUPT, "wrong_permille": WRONG}
    nodes = [
        SimulatedNode(FLAGGED, window=True, **faults),
        SimulatedNode(PLAIN, window=True),
        SimulatedNode(STRICT, window=True, **faults),
        SimulatedNode(BLIND, window=False),
        OtherModelNode(STRANGER, window=True),
        OtherModelNode(CHECKED, window=True, model_id=OTHER_MODEL),
    ]
    fields = [
        "label",
        "seq",
        "verified",
        "gateway_label",
        "agreement",
        "verify_alert",
        "verify_model",
    ]
    cfg = gateway_config(
        tmp_path,
        nodered,
        [link.path],
        thingsboard=tb_section(tb, telemetry_fields=fields),
        nodes={
            node_hex(FLAGGED): {"group": "watched"},
            node_hex(STRICT): {"group": "strict"},
        },
        verify=verify_section(
            models=[model(), model(verifies=f"{OTHER_MODEL:08x}")],
            groups={"watched": "flag", "strict": "drop_disagreeing"},
        ),
    )
    caplog.set_level(logging.WARNING)
    async with running(cfg) as gw:
        runner = NodeRunner(link, nodes, rate_hz=20, count=COUNT)
        await asyncio.wait_for(runner.run(until_acked=True), 120)  # every event acknowledged
        kept = dict.fromkeys((FLAGGED, PLAIN, BLIND, STRANGER, CHECKED), COUNT)
        kept[STRICT] = sum(_faulty(STRICT, s) is None for s in range(1, COUNT + 1))
        await sub.wait_for(lambda: all(len(_events(sub, n)) == k for n, k in kept.items()))
        await checker.wait_for(lambda: len(_tb(checker, FLAGGED)) == COUNT)
        c = dict(gw.health.counters)
        health = gw.health.payload()["verify"]

    flagged = _events(sub, FLAGGED)
    faulty = {s for s in range(1, COUNT + 1) if _faulty(FLAGGED, s)}
    assert 0 < len(faulty) < COUNT  # the draw gives both kinds of event
    assert {s for s, e in flagged.items() if e["verify_alert"]} == faulty
    assert {s for s, e in flagged.items() if not e["agreement"]} == faulty
    for s, e in flagged.items():
        assert e["verified"] is True and e["verify_kernels"] == "reference"
        assert e["verify_model"] == f"{MODEL_ID:08x}"
        want = _gateway_label(FLAGGED, s)
        assert e["gateway_label_index"] == want and e["gateway_label"] == LABELS[want]
        assert 0 < e["gateway_score"] <= 1
        if _faulty(FLAGGED, s) is None:
            assert e["gateway_label_index"] == e["label_index"]
    plain = _events(sub, PLAIN)
    assert all(e["agreement"] is True and e["verify_alert"] is False for e in plain.values())
    strict = _events(sub, STRICT)
    dropped = {s for s in range(1, COUNT + 1) if _faulty(STRICT, s)}
    assert set(strict) == set(range(1, COUNT + 1)) - dropped
    assert all(e["agreement"] is True for e in strict.values())
    assert all(
        e["verified"] is False and e["unverified_reason"] == "no_window"
        for e in _events(sub, BLIND).values()
    )
    assert all(
        e["verified"] is False and e["unverified_reason"] == "unknown_model"
        for e in _events(sub, STRANGER).values()
    )
    checked = _events(sub, CHECKED)
    assert all(e["model_id"] == f"{OTHER_MODEL:08x}" for e in checked.values())
    assert all(e["verify_model"] == f"{MODEL_ID:08x}" and e["agreement"] for e in checked.values())
    assert c["events_dropped_disagreeing"] == len(dropped)
    assert c["events_unverified_no_window"] == COUNT
    assert c["events_unverified_unknown_model"] == COUNT
    assert c["events_verified"] == 4 * COUNT
    assert c["events_disagreeing"] == len(faulty) + len(dropped)
    assert c.get("events_unverified_late", 0) == c.get("events_unverified_busy", 0) == 0
    unknown = [r for r in caplog.records if "no verification model for model id" in r.message]
    assert len(unknown) == 1 and "deadbeef" in unknown[0].message  # one line per model id
    assert health["queue_depth"] == 0 and health["inference_us_p50"] is not None
    assert health["models"][0]["kernels"] == "reference"
    # ThingsBoard carries the same verdicts as telemetry, with no code of its own
    tb_flagged = _tb(checker, FLAGGED)
    assert {s for s, v in tb_flagged.items() if v["verify_alert"]} == faulty
    assert all(v["verify_model"] == f"0x{MODEL_ID:08x}" for v in tb_flagged.values())
    assert all(
        v["gateway_label"] == LABELS[_gateway_label(FLAGGED, s)] for s, v in tb_flagged.items()
    )
    assert checker.violations == []


def _events(sub: Any, node: int) -> dict[int, dict[str, Any]]:
    return {m.json()["seq"]: m.json() for m in sub.where(f"{node_hex(node)}/event")}


def _tb(checker: Any, node: int) -> dict[int, dict[str, Any]]:
    return {v["seq"]: v for _, v in checker.telemetry_of(node_hex(node)) if "verified" in v}


# ---- a stopped, a killed worker --------------------------------------------------------


async def _own(tmp_path: Path, **verify: Any) -> tuple[Any, Any]:
    gw = await build(
        gateway_config(tmp_path, None, [], mqtt={"enabled": False}, verify=verify_section(**verify))
    )
    return gw, own_ingest(gw, verification=gw.verification)


async def _stop(gw: Any, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    gw.verification.close()
    await gw.outbox.close()


async def _verdicts(gw: Any) -> list[dict[str, Any]]:
    return [json.loads(r.verdict) for r in await gw.outbox.fetch(0, 100) if r.verdict]


async def test_a_stopped_worker_delays_no_event_beyond_the_wait_and_loses_none(
    tmp_path: Path,
) -> None:
    # the wait is long (1 s): the verdict after SIGCONT must not turn late on a loaded machine;
    # the batches before it wait for a worker that is stopped, so their outcome is certain
    gw, ingest = await _own(tmp_path, max_wait_ms=1000)
    stage = gw.verification
    pid = stage.worker_pid
    sent: list[bytes] = []
    node = 0xE100
    os.kill(pid, signal.SIGSTOP)  # the worker hangs, as a runtime stuck in invoke would
    for seq in (1, 2):  # one batch: its wait runs out
        await ingest.put(_inbound(node, expected_event(node, seq, window=True), seq, sent))
    task = asyncio.create_task(ingest.run())
    try:
        await _until(lambda: _acked(sent) == 2)
        await ingest.put(_inbound(node, expected_event(node, 3, window=True), 3, sent))
        await _until(lambda: _acked(sent) == 3)  # the worker is still busy: no wait at all
        c = gw.health.counters
        assert c["events_unverified_late"] == 2 and c["events_unverified_busy"] == 1
        assert stage.health()["worker_busy"] is True
        os.kill(pid, signal.SIGCONT)  # back: past the deadline, it answers at once
        await _until(lambda: not stage.health()["worker_busy"])
        await ingest.put(_inbound(node, expected_event(node, 4, window=True), 4, sent))
        await _until(lambda: _acked(sent) == 4)
        assert c["events_verified"] == 1 and stage.worker_pid == pid
        reasons = [v.get("unverified_reason") for v in await _verdicts(gw)]
        assert reasons == ["late", "late", "busy", None]
    finally:
        os.kill(pid, signal.SIGCONT)
        await _stop(gw, task)


async def test_a_killed_worker_is_replaced_and_no_event_is_lost(tmp_path: Path) -> None:
    gw, ingest = await _own(tmp_path)
    stage = gw.verification
    first = stage.worker_pid
    sent: list[bytes] = []
    node = 0xE300
    os.kill(first, signal.SIGSTOP)
    await ingest.put(_inbound(node, expected_event(node, 1, window=True), 1, sent))
    task = asyncio.create_task(ingest.run())
    try:
        await _until(lambda: _acked(sent) == 1)  # late: the worker holds the batch
        os.kill(first, signal.SIGKILL)  # and dies with it
        c = gw.health.counters
        await _until(lambda: c["verify_worker_died"] == 1)
        seq = 1
        while c["events_verified"] == 0:  # the next batches start a new worker
            seq += 1
            await ingest.put(_inbound(node, expected_event(node, seq, window=True), seq, sent))
            await _until(lambda n=seq: _acked(sent) == n)
            await _until(lambda: not stage.health()["worker_busy"])
        assert c["verify_worker_starts"] == 1 and stage.worker_pid not in (None, first)
        stored = [r for r in await gw.outbox.fetch(0, 100) if r.kind == RecordKind.EVENT]
        assert c["events"] == seq == len(stored)  # every event stored
        verdicts = await _verdicts(gw)
        assert verdicts[0]["unverified_reason"] == "late" and verdicts[-1]["verified"] is True
    finally:
        await _stop(gw, task)


def _acked(sent: list[bytes]) -> int:
    ups = [b.seq for b in (decode(m).body for m in sent) if isinstance(b, Ack)]
    return max(ups, default=0)


# ---- windows the model cannot take -----------------------------------------------------


async def test_windows_of_the_wrong_shape_or_quantisation_go_on_unverified(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gw, ingest = await _own(tmp_path)
    good = expected_event(0xE200, 1, window=True)
    w = good.window
    assert w is not None
    bad = [
        FeatureWindow((50, 12), w.scale, w.zero_point, w.data),  # same length, other dims
        FeatureWindow((100, 5), w.scale, w.zero_point, w.data[:500]),  # too short
        FeatureWindow((1, 100, 6), w.scale * 2, w.zero_point, w.data),  # other scale
        FeatureWindow((100, 6), w.scale, w.zero_point + 1, w.data),  # other zero point
        FeatureWindow((1, 100, 6), w.scale, w.zero_point, w.data),  # a batch dim: fine
    ]
    sent: list[bytes] = []
    caplog.set_level(logging.WARNING)
    task = asyncio.create_task(ingest.run())
    try:
        for seq, window in enumerate(bad, 1):
            event = dataclasses.replace(good, window=window)
            await ingest.put(_inbound(0xE200, event, seq, sent))
        await _until(lambda: _acked(sent) == len(bad))
        c = gw.health.counters
        assert c["events_unverified_window_mismatch"] == 4 and c["events_verified"] == 1
        assert c["events"] == 5  # every event stored
        lines = [r.message for r in caplog.records if "cannot take" in r.message]
        assert any("dims [50, 12]" in m for m in lines)
        assert any("zero point" in m for m in lines)
    finally:
        await _stop(gw, task)


# ---- model files that cannot be used -----------------------------------------------------


def _problems(tmp_path: Path, **over: Any) -> list[tuple[str, str, str]]:
    cfg = parse_config(
        config_data(tmp_path, None, [], verify=verify_section(models=[model(**over)]))
    )
    with pytest.raises(ConfigError) as info:
        check_models(cfg.verify)
    return info.value.problems


def test_a_bad_model_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "gone.tflite"
    (path, msg, hint) = _problems(tmp_path, file=str(missing))[0]
    assert path == "verify.models.0.file" and str(missing) in msg and hint

    (path, msg, _) = _problems(tmp_path, sha256="0" * 64)[0]
    assert path == "verify.models.0.sha256" and meta()["sha256"] in msg

    text = tmp_path / "notes.tflite"
    text.write_text("not a model at all\n")
    import hashlib

    digest = hashlib.sha256(text.read_bytes()).hexdigest()
    (path, msg, hint) = _problems(tmp_path, file=str(text), sha256=digest)[0]
    assert path == "verify.models.0.file" and str(text) in msg and "not a model" in msg

    (path, msg, _) = _problems(tmp_path, input_dims=[128, 3])[0]
    assert path == "verify.models.0.input_dims" and "[100, 6]" in msg

    (path, msg, _) = _problems(tmp_path, labels=["a", "b"])[0]
    assert path == "verify.models.0.labels" and "4 outputs" in msg

    cfg = parse_config(
        config_data(tmp_path, None, [], verify=verify_section(models=[model(), model()]))
    )
    with pytest.raises(ConfigError) as info:
        check_models(cfg.verify)
    assert info.value.problems[0][0] == "verify.models.1.file"


def test_a_separate_verifier_is_keyed_by_the_node_model(tmp_path: Path) -> None:
    cfg = parse_config(
        config_data(tmp_path, None, [], verify=verify_section(models=[model(verifies="0a0b0c0d")]))
    )
    models = check_models(cfg.verify)
    entry: ModelEntry = models[0x0A0B0C0D]
    assert entry.own_id == MODEL_ID and entry.model_id == 0x0A0B0C0D


def _check_config(
    tmp_path: Path, data: dict[str, Any], *hide: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "gateway.toml"
    path.write_text(toml_text(data))
    # hiding a module the way an environment without it looks to importlib
    hidden = "".join(f"sys.modules[{m!r}] = None; " for m in hide)
    code = f"import sys; {hidden}from gateway.cli import main; sys.exit(main(['check-config', {str(path)!r}]))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_check_config_names_the_bad_model_and_the_missing_extra(tmp_path: Path) -> None:
    bad = config_data(tmp_path, None, [], verify=verify_section(models=[model(sha256="1" * 64)]))
    done = _check_config(tmp_path, bad)
    assert done.returncode == 78
    assert (
        "verify.models.0.sha256" in done.stderr and str(MODEL_DIR / "model.tflite") in done.stderr
    )

    good = config_data(tmp_path, None, [], verify=verify_section())
    done = _check_config(tmp_path, good)
    assert done.returncode == 0, done.stderr

    done = _check_config(tmp_path, good, "ai_edge_litert", "tflite_runtime")
    assert done.returncode == 78
    lines = [line for line in done.stderr.splitlines() if "verify.enabled" in line]
    assert len(lines) == 1 and "ai-edge-litert or tflite-runtime" in lines[0]
    assert "tinyml-gateway[verify]" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("on", [False, True])
def test_the_gateway_process_never_imports_numpy(tmp_path: Path, on: bool) -> None:
    """Off, nothing of verification loads; on, only its worker process has numpy and the
    runtime, and the gateway's own process stays lean."""
    path = tmp_path / "gateway.toml"
    verify = verify_section() if on else {}
    path.write_text(toml_text(config_data(tmp_path, None, [], verify=verify)))
    code = (
        "import sys, asyncio\n"
        "from pathlib import Path\n"
        "from gateway.config import load_config\n"
        "from gateway.service import build\n"
        "async def main():\n"
        f"    gw = await build(load_config(Path({str(path)!r})))\n"
        "    pid = gw.verification.worker_pid if gw.verification else None\n"
        "    print('numpy' in sys.modules, pid is not None)\n"
        "    if gw.verification: gw.verification.close()\n"
        "    await gw.outbox.close()\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["False", str(on)], done.stderr


def test_an_unknown_policy_or_kernels_value_is_refused(tmp_path: Path) -> None:
    for over, field in (
        ({"models": [model(policy="ignore")]}, "verify.models.0.policy"),
        ({"models": [model(kernels="turbo")]}, "verify.models.0.kernels"),
        ({"models": [model(delegate="edgetpu")]}, "verify.models.0"),
        ({"models": []}, "verify"),
        ({"groups": {"hall": "maybe"}}, "verify.groups.hall"),
        ({"tolerance_lsb": 12}, "verify"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_config(config_data(tmp_path, None, [], verify=verify_section(**over)))
        assert info.value.problems[0][0] == field, info.value.problems


def test_run_refuses_a_file_that_is_not_a_model_naming_it(tmp_path: Path) -> None:
    """Found only by the runtime, in the worker process: still one clear message."""
    import hashlib

    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"TFL3" + bytes(200))
    digest = hashlib.sha256(junk.read_bytes()).hexdigest()
    data = config_data(
        tmp_path, None, [], verify=verify_section(models=[model(file=str(junk), sha256=digest)])
    )
    path = tmp_path / "gateway.toml"
    path.write_text(toml_text(data))
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "run", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env_without_coverage(),
    )
    assert done.returncode == 78, done.stderr
    assert "verify.models.0.file" in done.stderr and str(junk) in done.stderr
    assert "not a model" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "data" / "outbox.sqlite3").exists()  # refused before the outbox


def test_every_verdict_field_is_a_thingsboard_telemetry_field() -> None:
    from typing import get_args

    from gateway.config import TelemetryField
    from gateway.verify.verdict import Unverified, Verdict, unverified

    keys = set(Verdict(True, label=1, label_name="x", score=0.5, agreement=True).fields())
    keys |= set(unverified(Unverified.BUSY).fields())
    assert keys <= set(get_args(TelemetryField))


def test_the_old_output_step_tolerance_is_refused_with_its_replacement(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(config_data(tmp_path, None, [], verify=verify_section(tolerance_lsb=12)))
    (path, message, _), *_ = info.value.problems
    assert path == "verify" and "tolerance_steps" in message and "remove" in message


async def test_fast_kernels_are_warned_about_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = parse_config(
        config_data(tmp_path, None, [], verify=verify_section(models=[model(kernels="fast")]))
    )
    caplog.set_level(logging.WARNING)
    gw = await build(cfg)
    try:
        lines = [r.getMessage() for r in caplog.records if 'kernels = "fast"' in r.getMessage()]
        assert len(lines) == 1 and "TFLM" in lines[0], lines
    finally:
        assert gw.verification is not None
        gw.verification.close()
        await gw.outbox.close()


def test_softmax_tie_steps_follow_the_model_s_quantisation() -> None:
    """Logit steps within which an int8 softmax may give two labels one score."""
    from gateway.verify.runtime import softmax_tie_steps

    assert softmax_tie_steps(4, 1 / 256, 0.5348844) == 0  # the shipped model
    # a small logit scale: several of its steps fit in the gap the output cannot show
    # (2 x 4 / 256 of probability is a logit gap of 0.0317)
    assert softmax_tie_steps(4, 1 / 256, 0.005) == 6
    assert softmax_tie_steps(4, 1 / 256, 0.0317 / 3) == 3
    assert softmax_tie_steps(200, 1 / 256, 0.1) == 255  # the output separates nothing
