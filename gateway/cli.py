"""tinyml-gateway run | check-config | node forget | demo | simulate | version. Parsing only."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gateway import __version__
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.config import Config

EX_OK = 0
EX_CONFIG = 78  # sysexits.h EX_CONFIG
EX_USAGE = 64  # sysexits.h EX_USAGE
EX_IOERR = 74  # sysexits.h EX_IOERR: the outbox cannot be used
EX_SOFTWARE = 70  # sysexits.h EX_SOFTWARE: a part of the gateway could not start
DEFAULT_CONFIG = Path(os.environ.get("TINYML_GATEWAY_CONFIG", "/etc/tinyml-gateway/config.toml"))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinyml-gateway", description="Edge gateway for TinyML sensor fleets."
    )
    p.add_argument("--version", action="version", version=f"tinyml-gateway {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the gateway")
    run.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    check = sub.add_parser("check-config", help="validate a configuration file")
    check.add_argument("config", type=Path)
    demo = sub.add_parser("demo", help="the whole pipeline on simulated nodes, no hardware")
    demo.add_argument("--nodes", type=int, default=4)
    demo.add_argument("--rate", type=float, default=1.0, help="events per second per node")
    demo.add_argument("--duration", type=float, default=None, help="seconds; default: until Ctrl-C")
    demo.add_argument(
        "--broker",
        default=None,
        help="host:port of an MQTT broker to use instead of the embedded one",
    )
    demo.add_argument(
        "--port", type=int, default=1883, help="port of the embedded broker (0: any free port)"
    )
    demo.add_argument("--data-dir", type=Path, default=None)
    demo.add_argument("--plain", action="store_true", help="log lines instead of the live view")
    demo.add_argument(
        "--ble",
        action="store_true",
        help="one more node over BLE, on an emulated BlueZ (scripts/setup.sh demo-ble)",
    )
    sim = sub.add_parser("simulate", help="simulated nodes on a pseudo-terminal or serial port")
    where = sim.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="create a pseudo-terminal (default)")
    where.add_argument("--device", type=Path, help="write to this serial device")
    sim.add_argument("--baudrate", type=int, default=115200)
    sim.add_argument("--nodes", type=int, default=1)
    sim.add_argument(
        "--first-id", default="00000000000000a1", help="node id of the first node (hex)"
    )
    sim.add_argument("--boot", type=int, default=1, help="boot id the nodes start with")
    sim.add_argument("--rate", type=float, default=1.0, help="events per second per node")
    sim.add_argument(
        "--count", type=int, default=None, help="events per node, then wait for ACKs and exit"
    )
    sim.add_argument("--key", default=None, help="HMAC key (hex) every node signs with")
    sim.add_argument("--window", action="store_true", help="attach a feature window to each event")
    sim.add_argument(
        "--corrupt",
        type=int,
        default=0,
        metavar="PERMILLE",
        help="events per thousand whose window has a sensor fault (with --window)",
    )
    sim.add_argument(
        "--wrong-label",
        type=int,
        default=0,
        metavar="PERMILLE",
        help="events per thousand whose label is not what the model says",
    )
    node = sub.add_parser("node", help="act on one node's stored state")
    node_sub = node.add_subparsers(dest="action", required=True)
    forget = node_sub.add_parser(
        "forget",
        help="clear a node's stored boot, sequence and clock state (after a boot counter "
        "reset the gateway did not accept by itself)",
    )
    forget.add_argument("node_id", help="16 hex digits")
    forget.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    forget.add_argument(
        "--wait", type=float, default=10.0, help="seconds to wait for the running gateway"
    )
    doctor = sub.add_parser("doctor", help="check a live install and say what to fix")
    doctor.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    doctor.add_argument(
        "--user", default=None, help="the service's user (default: tinyml-gateway, if it exists)"
    )
    sub.add_parser("version", help="print the version")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"tinyml-gateway {__version__}")
        return EX_OK
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "run":
        return _run(args.config)
    if args.command == "node":
        return _forget(args.config, args.node_id, args.wait)
    if args.command == "doctor":
        return _doctor(args.config, args.user)
    if args.command == "demo":
        from gateway.demo import run_demo

        return run_demo(args)
    from gateway.sim.cli import run_simulate

    return run_simulate(args)


def _print_problems(intro: str, exc: ConfigError) -> None:
    print(f"{intro} {len(exc.problems)} problem(s):", file=sys.stderr)
    for field, msg, hint in exc.problems:
        print(f"  {field}: {msg}" + (f"\n      hint: {hint}" if hint else ""), file=sys.stderr)


def _load(path: Path, intro: str) -> Config | None:
    """The configuration, with its storage checked; None after printing every problem."""
    from gateway.config import dependency_problems, load_config, storage_problems

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        _print_problems(intro, exc)
        return None
    problems = dependency_problems(cfg) + storage_problems(cfg)
    if problems:
        _print_problems(intro, ConfigError(problems))
        return None
    return cfg


def _model_problems(cfg: Config) -> list[tuple[str, str, str]]:
    """The verification models, each loaded once to check it (in this process: `run`
    loads them in its worker)."""
    if not cfg.verify.enabled:
        return []
    from gateway.verify.registry import check_models

    try:
        check_models(cfg.verify)
    except ConfigError as exc:
        return exc.problems
    return []


def _check_config(path: Path) -> int:
    cfg = _load(path, f"{path}:")
    if cfg is None:
        return EX_CONFIG
    problems = _model_problems(cfg)
    if problems:
        _print_problems(f"{path}:", ConfigError(problems))
        return EX_CONFIG
    print(
        f"{path}: OK (gateway {cfg.gateway.id}, {len(cfg.serial)} serial source(s), "
        f"{len(cfg.nodes.nodes)} configured node(s), mqtt {'on' if cfg.mqtt.enabled else 'off'})"
    )
    return EX_OK


def _forget(path: Path, node_text: str, wait_s: float) -> int:
    from gateway.config import load_config
    from gateway.model import parse_node_id
    from gateway.operator import request_forget

    try:
        node_id = parse_node_id(node_text)
    except ValueError as exc:
        print(f"tinyml-gateway node forget: {exc}", file=sys.stderr)
        return EX_USAGE
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        _print_problems(f"{path}:", exc)
        return EX_CONFIG
    ok, text = request_forget(cfg.outbox_path, node_id, wait_s)
    print(text, file=sys.stdout if ok else sys.stderr)
    return EX_OK if ok else EX_IOERR


def _doctor(path: Path, user: str | None) -> int:
    from gateway.config import load_config
    from gateway.doctor import run

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        _print_problems(f"FAIL  {path}:", exc)
        return EX_CONFIG
    return run(cfg, user)


def _run(path: Path) -> int:
    from gateway.errors import GatewayError, OutboxError
    from gateway.logs import setup_logging
    from gateway.service import run

    cfg = _load(path, f"{path}: refusing to start:")
    if cfg is None:
        return EX_CONFIG
    setup_logging(cfg.log.level, cfg.log.format)
    try:
        asyncio.run(run(cfg, path))
    except ConfigError as exc:  # what only loading the models finds
        _print_problems(f"{path}: refusing to start:", exc)
        return EX_CONFIG
    except OutboxError as exc:
        logging.getLogger("gateway").error("%s", exc)
        return EX_IOERR
    except GatewayError as exc:  # the verification worker did not start
        logging.getLogger("gateway").error("%s", exc)
        return EX_SOFTWARE
    except KeyboardInterrupt:
        pass
    return EX_OK
