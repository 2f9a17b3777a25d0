"""Wires the pieces into one asyncio process and runs it until SIGTERM or SIGINT.

Start order: outbox (and the node state in it), pipeline, sinks, sources; then
READY. Stop order: sources first, so nothing new arrives; the pipeline drains
what is queued; sinks record how far they got; the outbox closes last.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.clock import Clock
from gateway.commands import CommandRouter
from gateway.config import Config
from gateway.errors import ConfigError, OutboxError
from gateway.health import Health
from gateway.ingest import Ingest
from gateway.logs import RateLimitedLog
from gateway.model import node_hex
from gateway.nodes import NodeRegistry
from gateway.outbox import Outbox
from gateway.reload import reload
from gateway.sinks import Sink
from gateway.sinks.delivery import Delivery
from gateway.sinks.links import nodered_link, thingsboard_link
from gateway.sinks.mqtt import MqttSession, quiet_cancelled_connects
from gateway.sinks.nodered import NodeRedSink
from gateway.sinks.thingsboard import ThingsBoardSink
from gateway.sources import Source
from gateway.sources.serial import SerialSource
from gateway.supervision import Supervisor
from gateway.systemd import notify

if TYPE_CHECKING:
    from gateway.metrics import MetricsServer
    from gateway.verify.stage import VerificationStage

log = logging.getLogger(__name__)

READY_WAIT_S = 5.0  # how long READY waits for the first connection attempt of each sink


@dataclass
class Gateway:
    """The running service's parts, for the CLI, the demo and the tests."""

    config: Config
    health: Health
    outbox: Outbox
    registry: NodeRegistry
    router: CommandRouter
    ingest: Ingest
    sources: list[Source]
    sinks: list[Sink]
    verification: VerificationStage | None = None
    metrics: MetricsServer | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    ready_s: float | None = None


async def build(cfg: Config) -> Gateway:
    """Opens the outbox and builds every part; raises OutboxError on a bad database, and
    ConfigError on a bad verification model (before the outbox is opened)."""
    health = Health(cfg.gateway.id)
    clock = Clock(cfg.gateway.clock_check)
    bad = RateLimitedLog(logging.getLogger("gateway.input"), cfg.log.bad_input_interval_s)
    verification = await _verification(cfg, health, bad)
    outbox = Outbox(
        cfg.outbox_path,
        max_size_bytes=int(cfg.outbox.max_size_mb * 1e6),
        max_age_ms=int(cfg.outbox.max_age_h * 3.6e6),
        sync=cfg.outbox.sync,
    )
    sink_names = [
        n for n, on in (("mqtt", cfg.mqtt.enabled), ("thingsboard", cfg.thingsboard.enabled)) if on
    ]
    try:
        states = await outbox.open(sink_names)
    except BaseException:
        if verification is not None:
            verification.close()
        raise
    registry = NodeRegistry(cfg.nodes, states, bad)
    router = CommandRouter(registry, health, cfg.commands.timeout_s)
    deliveries: list[Delivery] = []

    def wake_sinks() -> None:
        for d in deliveries:
            d.wake.set()

    if verification is not None:
        verification.meta = registry.meta
    ingest = Ingest(
        verification=verification,
        registry=registry,
        outbox=outbox,
        clock=clock,
        health=health,
        router=router,
        bad_input=bad,
        on_commit=wake_sinks,
        commit_interval_ms=cfg.outbox.commit_interval_ms,
        commit_max_events=cfg.outbox.commit_max_events,
    )
    router.forget = ingest.forget
    sinks: list[Sink] = []
    if cfg.mqtt.enabled:
        delivery = Delivery("mqtt", outbox)
        deliveries.append(delivery)
        session = MqttSession("mqtt", nodered_link(cfg))
        sink = NodeRedSink(
            session=session,
            delivery=delivery,
            gateway_id=cfg.gateway.id,
            prefix=cfg.mqtt.topic_prefix,
            allowed_commands=list(cfg.mqtt.commands),
            router=router,
            meta=registry.meta,
            health=health,
            health_interval_s=cfg.health.interval_s,
            bad_input=bad,
        )
        session.will = sink.will()
        sinks.append(sink)
    if cfg.thingsboard.enabled:
        delivery = Delivery("thingsboard", outbox)
        deliveries.append(delivery)
        sinks.append(
            ThingsBoardSink(
                session=MqttSession("thingsboard", thingsboard_link(cfg)),
                delivery=delivery,
                cfg=cfg.thingsboard,
                gateway_id=cfg.gateway.id,
                router=router,
                registry=registry,
                health=health,
                health_interval_s=cfg.health.interval_s,
                bad_input=bad,
            )
        )
    sources: list[Source] = [SerialSource(s, clock, bad) for s in cfg.serial]
    if cfg.ble.enabled:
        from gateway.sources.ble import BleSource  # imports bleak: only when BLE is on

        sources.append(BleSource(cfg.ble, health.counters, bad))
    gw = Gateway(cfg, health, outbox, registry, router, ingest, sources, sinks, verification)
    _health_sections(gw)
    if cfg.metrics.enabled:
        from gateway.metrics import HealthCollector, MetricsServer

        collector = HealthCollector(gw.health.payload, gw.registry.all)
        gw.metrics = MetricsServer(collector, cfg.metrics.host, cfg.metrics.port)
    return gw


async def _verification(
    cfg: Config, health: Health, bad: RateLimitedLog
) -> VerificationStage | None:
    """The verification stage with its worker started and every model loaded in it; None
    when verification is off. Raises ConfigError naming a model file it cannot use."""
    if not cfg.verify.enabled:
        return None
    from gateway.verify.registry import read_models
    from gateway.verify.stage import VerificationStage

    stage = VerificationStage(cfg.verify, read_models(cfg.verify), health.counters, bad)
    await stage.start()
    health.section("verify", stage.health)
    return stage


def _health_sections(gw: Gateway) -> None:
    def nodes() -> dict[str, Any]:
        all_nodes = gw.registry.all()
        return {"known": len(all_nodes), "online": sum(n.online for n in all_nodes)}

    def outbox() -> dict[str, Any]:
        st = gw.outbox.stats
        return {
            "used_bytes": st.used_bytes,
            "dropped_cap": st.dropped_cap,
            "expired": st.expired,
            "disk_full": st.disk_full,
            "queue": gw.ingest.queue.qsize(),
            "batch_running_s": round(time.monotonic() - since, 3)
            if (since := gw.ingest.busy_since) is not None
            else 0.0,
            **st.persisted,
        }

    gw.health.section("nodes", nodes)
    gw.health.section("outbox", outbox)
    gw.health.section("sinks", lambda: {s.name: s.health() for s in gw.sinks})

    def sources() -> dict[str, Any]:
        return {k: v for src in gw.sources for k, v in src.health().items()}

    def totals() -> dict[str, Any]:
        # gateway-wide sums of what each port and BLE link reports (their "bad" counts by
        # reason): one key for a rule or an alarm to watch
        return {"frames_bad": _bad_frames(sources())}

    gw.health.section("sources", sources)
    gw.health.section("totals", totals)


def _bad_frames(section: Any) -> int:
    if not isinstance(section, dict):
        return 0
    own = section.get("bad")
    total = sum(own.values()) if isinstance(own, dict) else 0
    return total + sum(_bad_frames(v) for k, v in section.items() if k != "bad")


async def _maintain(gw: Gateway) -> None:
    while True:
        await gw.outbox.enforce_limits(Clock.now_ms())
        await asyncio.sleep(gw.config.outbox.check_interval_s)


async def _operator_requests(gw: Gateway, period_s: float = 1.0) -> None:
    """Takes what ``tinyml-gateway node forget`` left in the outbox (gateway/operator.py)."""
    while True:
        await asyncio.sleep(period_s)
        try:
            requests = await gw.outbox.requests()
            for rid, action, node_id in requests:
                if action == "forget":
                    result = await gw.router.forget_node(node_id)
                    if not result.ok:
                        log.warning("node forget %s: %s", node_hex(node_id), result.error)
                else:
                    log.warning("operator request %d: unknown action %r, ignored", rid, action)
                await gw.outbox.request_done(rid)
        except OutboxError as exc:  # disk full: the request stays and is taken again
            log.warning("operator requests not taken now: %s", exc)


async def _announce_ready(gw: Gateway, t0: float) -> None:
    # asyncio.wait, not wait_for(gather(...)): a gather cancelled by an early stop
    # leaves a future whose CancelledError asyncio reports as never retrieved
    waits = [asyncio.ensure_future(s.started()) for s in gw.sinks]
    try:
        if waits:
            await asyncio.wait(waits, timeout=READY_WAIT_S)
    finally:
        for w in waits:
            w.cancel()
    gw.ready_s = time.monotonic() - t0
    gw.ready.set()
    notify("READY=1\nSTATUS=running")
    log.info(
        "ready in %.0f ms: %d source(s), %d sink(s)",
        gw.ready_s * 1000,
        len(gw.sources),
        len(gw.sinks),
    )


async def serve(gw: Gateway, t0: float | None = None) -> None:
    """Runs until ``gw.stop`` is set; then stops in order and closes the outbox.

    A part that fails with an unexpected exception stops the service with it
    (systemd restarts it); parts never fail for bad input or lost peers.
    """
    t0 = time.monotonic() if t0 is None else t0
    asyncio.get_running_loop().set_exception_handler(quiet_cancelled_connects)
    if gw.metrics is not None:
        await _start_metrics(gw, gw.metrics)
    core = [
        asyncio.create_task(gw.ingest.run(), name="ingest"),
        asyncio.create_task(gw.ingest.liveness.watch(), name="liveness"),
        asyncio.create_task(_maintain(gw), name="outbox maintenance"),
        asyncio.create_task(_operator_requests(gw), name="operator requests"),
        *(asyncio.create_task(s.run(), name=f"sink {s.name}") for s in gw.sinks),
    ]
    supervisor = Supervisor(gw, list(core), gw.config.health.stall_s)
    core.append(asyncio.create_task(supervisor.run(), name="supervisor"))
    edge = [asyncio.create_task(src.run(gw.ingest), name=src.name) for src in gw.sources]
    edge.append(asyncio.create_task(_announce_ready(gw, t0), name="ready"))
    stopper = asyncio.create_task(gw.stop.wait(), name="stop")
    watched = {stopper, *core, *edge}
    try:
        while not gw.stop.is_set():
            done, watched = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
    finally:
        stopper.cancel()
        await _cancel(edge)
        await gw.ingest.drain(timeout_s=5.0)
        await _cancel(core)
        await _shutdown(gw)


async def _start_metrics(gw: Gateway, metrics: MetricsServer) -> None:
    try:
        await metrics.start()
    except OSError as exc:
        await _shutdown(gw)
        raise ConfigError(
            [
                (
                    "metrics.port",
                    f"cannot listen on {metrics.host}:{metrics.port}: {exc.strerror or exc}",
                    "choose a free port and a local address, or set enabled = false",
                )
            ]
        ) from None


async def _cancel(tasks: list[asyncio.Task[None]], timeout_s: float = 10.0) -> None:
    for task in tasks:
        task.cancel()
    _, stuck = await asyncio.wait(tasks, timeout=timeout_s)
    for task in stuck:  # a bug, not an input: say which part, and stop anyway
        log.error("%s did not stop within %.0f s of being cancelled", task.get_name(), timeout_s)


async def _shutdown(gw: Gateway) -> None:
    notify("STOPPING=1")
    if gw.metrics is not None:
        await gw.metrics.close()
    for sink in gw.sinks:
        await sink.close()
    if gw.verification is not None:
        gw.verification.close()
    await gw.outbox.close()
    log.info("stopped")


def install_signals(gw: Gateway, config_path: Path | None = None) -> Callable[[], None]:
    """SIGTERM and SIGINT stop the gateway; SIGHUP reloads ``config_path``, one reload at
    a time (a SIGHUP during one is taken once it is done)."""
    loop = asyncio.get_running_loop()
    signals = [signal.SIGTERM, signal.SIGINT]
    for sig in signals:
        loop.add_signal_handler(sig, gw.stop.set)
    reloads: list[asyncio.Task[None]] = []
    lock = asyncio.Lock()

    async def reload_once(path: Path) -> None:
        async with lock:
            await reload(gw, path)

    if config_path is not None:
        signals.append(signal.SIGHUP)

        def on_hup() -> None:
            reloads[:] = [t for t in reloads if not t.done()]
            reloads.append(asyncio.create_task(reload_once(config_path), name="reload"))

        loop.add_signal_handler(signal.SIGHUP, on_hup)

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)
        for task in reloads:
            task.cancel()

    return remove


# A batch (up to commit_max_events messages, a few objects each) stays alive while the
# pipeline works on it, so with Python's default threshold of 700 new objects the young
# generation was collected every few hundred messages: 0.4-0.5 s of collections in a
# 120,000-event run of bench_pipeline (gc.callbacks), about 10 % of the gateway's CPU
# per event. What is built at start-up lives as long as the process: frozen, never walked.
YOUNG_GC_THRESHOLD = 20_000


def settle_gc() -> None:
    gc.freeze()
    gc.set_threshold(YOUNG_GC_THRESHOLD, *gc.get_threshold()[1:])


async def run(cfg: Config, config_path: Path | None = None) -> None:
    t0 = time.monotonic()
    gw = await build(cfg)
    settle_gc()
    remove = install_signals(gw, config_path)
    try:
        await serve(gw, t0)
    finally:
        remove()
