"""The pipeline from decoded messages to committed records, and the ACKs back to nodes.

Sources put :class:`Inbound` items on one bounded queue (a full queue makes
them wait: backpressure, not loss). This stage drains the queue in batches,
applies the node policy, authentication, replay and duplicate checks, stamps
wall-clock time once, commits the batch to the outbox in one transaction, and
only then acknowledges the committed events to their nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from gateway import downlink
from gateway.admission import Admission
from gateway.boots import BootStage
from gateway.clock import Clock, kernel_boot_id
from gateway.commands import CommandRouter
from gateway.errors import OutboxFullError
from gateway.fields import dumps
from gateway.health import Health
from gateway.liveness import Liveness, StatusChange
from gateway.logs import BadInput, RateLimitedLog
from gateway.model import CommandRequest, CommandResult, Inbound, RecordKind, node_hex
from gateway.nodes import LiveNode, NodeRegistry
from gateway.outbox import NewRecord, NodeState, Outbox
from gateway.protocol import Ack, Arrival, CommandAck, Heartbeat, Info, MsgType, SequenceState
from gateway.stamps import Sample, stamp

if TYPE_CHECKING:  # the stage needs numpy and a runtime: imported only when configured
    from gateway.verify.stage import VerificationStage

log = logging.getLogger(__name__)

_KIND_OF: Final = {
    MsgType.EVENT: RecordKind.EVENT,
    MsgType.HEARTBEAT: RecordKind.HEARTBEAT,
    MsgType.INFO: RecordKind.INFO,
    MsgType.LOG: RecordKind.LOG,
}


@dataclass(frozen=True, slots=True)
class Forget:
    """An operator's request to clear a node's stored state (docs/protocol.md 2.1)."""

    node_id: int
    done: asyncio.Future[bool]  # False: no such node


@dataclass(slots=True)
class _Batch:
    records: list[NewRecord]
    touched: dict[int, LiveNode]
    snapshots: dict[int, tuple[NodeState, bool]]
    ack: set[int]
    forgets: list[Forget]
    verify: list[tuple[int, Inbound]]  # the new EVENTs with windows to verify: (record, item)


class Ingest:
    def __init__(
        self,
        *,
        registry: NodeRegistry,
        outbox: Outbox,
        clock: Clock,
        health: Health,
        router: CommandRouter,
        bad_input: RateLimitedLog,
        on_commit: Callable[[], None],
        commit_interval_ms: int,
        commit_max_events: int,
        ack_transports: frozenset[str] = frozenset({"serial", "ble"}),
        verification: VerificationStage | None = None,
        queue_size: int = 20_000,
    ) -> None:
        self.queue: asyncio.Queue[Inbound | StatusChange | Forget] = asyncio.Queue(queue_size)
        self._registry = registry
        self._outbox = outbox
        self._clock = clock
        self._health = health
        self._router = router
        self._on_commit = on_commit
        self._interval_s = commit_interval_ms / 1000
        self._max = commit_max_events
        self._ack_transports = ack_transports
        self._verification = verification
        self._kernel_boot = kernel_boot_id()
        self._synced = clock.synced()
        self._unsynced_delta = None if self._synced else clock.wall_minus_boottime_ms()
        self.c = health.counters
        # when the batch being processed started (monotonic s), None between batches: a
        # commit that never returns shows in health as a growing batch_running_s
        self.busy_since: float | None = None
        self._asks: set[asyncio.Task[CommandResult]] = set()
        self.liveness = Liveness(registry, self.queue)
        self._bad_input = BadInput(self.c, bad_input)
        self._admission = Admission(registry, self._bad_input)
        self._boots = BootStage(self._bad_input)

    async def drain(self, timeout_s: float) -> None:
        """Waits until everything queued so far is committed (at shutdown)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.queue.join(), timeout_s)

    async def put(self, item: Inbound) -> None:
        """What sources call for every decoded message (waits while the queue is full)."""
        await self.queue.put(item)

    async def put_all(self, items: Iterable[Inbound]) -> None:
        """``put`` of each item in order; waits only while the queue is full (two
        coroutine calls per message were a few per cent of the gateway's CPU)."""
        queue = self.queue
        for item in items:
            if queue.full():
                await queue.put(item)
            else:
                queue.put_nowait(item)

    async def forget(self, node_id: int) -> bool:
        """Clears a node's stored sequence, boot and clock state, in order with its
        messages; its next message starts afresh in a new dedup epoch. False: no such
        node. Raises OutboxFullError when the disk is full."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        await self.queue.put(Forget(node_id, done))
        return await done

    def port_closed(self, port: str, reason: str | None = None) -> None:
        """What sources call when a device goes away: its nodes go offline."""
        self.liveness.port_closed(port, reason)

    # ---- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            items: list[Inbound | StatusChange | Forget] = [await self.queue.get()]
            while len(items) < self._max and not self.queue.empty():
                items.append(self.queue.get_nowait())
            taken = len(items)
            # changes the queue had no room for go first, so that a node whose queued
            # messages bring it back ends online
            overflow = self.liveness.take_overflow()
            if overflow:
                items = [*overflow, *items]
            started = time.monotonic()
            self.busy_since = started
            try:
                await self._check_clock()
                await self._process(items)
            finally:
                self.busy_since = None
                for _ in range(taken):
                    self.queue.task_done()  # what drain() waits for
            # Group commit: at most one fsync per interval; what arrives meanwhile
            # joins the next batch.
            rest = self._interval_s - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)

    async def _process(self, items: list[Inbound | StatusChange | Forget]) -> None:
        batch = self._collect(items)
        if not batch.touched and not batch.records and not self._registry.forgotten:
            return
        if batch.verify:
            await self._verify(batch)
        # reserved before the commit, so that the counter is stored with the state
        acks = {node_id: downlink.reserve(batch.touched[node_id]) for node_id in batch.ack}
        forget = frozenset(self._registry.forgotten)
        try:
            await self._outbox.commit(
                batch.records, {k: n.state for k, n in batch.touched.items()}, forget
            )
        except OutboxFullError:
            await self._refused(batch)
            return
        await self._committed(batch, acks, forget)

    def _collect(self, items: list[Inbound | StatusChange | Forget]) -> _Batch:
        """The stages before the commit, in order, for every item of the batch."""
        batch = _Batch([], {}, {}, set(), [], [])
        unsynced = None if self._synced else self._kernel_boot
        now = time.monotonic()
        for item in items:
            if isinstance(item, StatusChange):
                self._status(batch, item, unsynced)
            elif isinstance(item, Forget):
                self._forget(batch, item)
            else:
                self._handle(batch, item, now, unsynced)
        return batch

    async def _committed(self, batch: _Batch, acks: dict[int, int], forget: frozenset[int]) -> None:
        """What follows a commit: answers, the sinks' wake-up, verification, then ACKs."""
        for request in batch.forgets:
            request.done.set_result(True)
        if forget:
            self._registry.forgotten -= forget
            self.c["nodes_forgotten"] += len(forget)
        self.c["records_committed"] += len(batch.records)
        self._on_commit()
        for node_id, seq in acks.items():
            await self._send_ack(batch.touched[node_id], seq)
        for node in batch.touched.values():
            current = node.state.seq.boot_id
            if node.info_boot != current and node.downlink is not None and not node.info_asked:
                self._ask_info(node)

    async def _verify(self, batch: _Batch) -> None:
        """Each new EVENT's verdict into its record, within the stage's bounded wait. An
        event the policy drops is still acknowledged (the node must not resend it), and
        counted; it is not stored."""
        assert self._verification is not None
        verdicts = await self._verification.verdicts([item.message for _, item in batch.verify])
        dropped = set()
        for (at, _), verdict in zip(batch.verify, verdicts, strict=True):
            if verdict.drop:
                dropped.add(at)
            else:
                record = batch.records[at]
                batch.records[at] = dataclasses.replace(
                    record, verdict=dumps(verdict.fields()).decode()
                )
        if dropped:
            batch.records = [r for i, r in enumerate(batch.records) if i not in dropped]

    async def _refused(self, batch: _Batch) -> None:
        """The disk is full: nothing in this batch is stored or acknowledged; the nodes keep
        and resend it."""
        for node_id, (state, online) in batch.snapshots.items():
            node = batch.touched[node_id]
            # a command may have been sent meanwhile with a newer downlink seq: a seq
            # handed out once must never be handed out again (keyed nodes refuse it)
            state.downlink_seq = node.state.downlink_seq
            node.state, node.online = state, online
        self.c["commit_failed_disk_full"] += 1
        self.c["events_refused_disk_full"] += sum(r.kind == RecordKind.EVENT for r in batch.records)
        for request in batch.forgets:
            request.done.set_exception(OutboxFullError("disk full: nothing was forgotten"))
        await asyncio.sleep(1.0)

    def _ask_info(self, node: LiveNode) -> None:
        """A node seen without an INFO of its current boot (the gateway started after it
        booted, or its INFO was not among the messages that confirmed the boot) is asked
        once per boot."""
        node.info_asked = True
        req = CommandRequest("info", "get_info")
        task = asyncio.create_task(self._router.request(node.node_id, req, ("get_info",)))
        self._asks.add(task)  # keep a reference until done, or it may be collected
        task.add_done_callback(self._asks.discard)

    def _touch(self, batch: _Batch, node: LiveNode) -> None:
        if node.node_id not in batch.snapshots:
            batch.snapshots[node.node_id] = (copy.deepcopy(node.state), node.online)
        # a node forgotten and admitted again within the batch is a new object: its
        # state is the one to commit
        batch.touched[node.node_id] = node

    def _forget(self, batch: _Batch, request: Forget) -> None:
        node = self._registry.get(request.node_id)
        if node is None:
            request.done.set_result(False)
            return
        self._touch(batch, node)
        batch.forgets.append(request)
        old = node.state
        # the downlink counter stays: a keyed node refuses a seq it has accepted before
        node.state = NodeState(
            SequenceState(epoch=old.seq.epoch + 1), downlink_seq=old.downlink_seq
        )
        node.candidates.clear()
        node.confirming.clear()
        node.info, node.info_boot, node.info_asked = None, None, False
        log.warning(
            "node %s: stored state forgotten at the operator's request; its next message "
            "starts afresh (dedup epoch %d)",
            node_hex(node.node_id),
            node.state.seq.epoch,
        )

    def _status(self, batch: _Batch, change: StatusChange, unsynced: str | None) -> None:
        node = self._registry.get(change.node_id)
        if node is None:
            return
        self._touch(batch, node)
        batch.records.append(self._status_record(node, change.online, change.reason, unsynced))

    def _status_record(
        self, node: LiveNode, online: bool, reason: str, unsynced: str | None
    ) -> NewRecord:
        seq = node.state.seq
        data = json.dumps({"online": online, "reason": reason}).encode()
        return NewRecord(
            RecordKind.STATUS,
            node.node_id,
            seq.boot_id,
            seq.contiguous,
            0,
            self._clock.now_ms(),
            unsynced,
            node.transport,
            data,
            seq.epoch,
            node.rssi,
        )

    def _handle(self, batch: _Batch, item: Inbound, now: float, unsynced: str | None) -> None:
        node = self._admission.admit(item)
        for gone in self._registry.take_evicted():  # made room for a new node
            reason = "forgotten: [nodes] max_nodes reached"
            batch.records.append(self._status_record(gone, False, reason, unsynced))
        if node is None:
            return
        self._touch(batch, node)
        node.last_seen = now
        node.transport, node.port = item.transport, item.port
        if item.downlink is not None:
            node.downlink = item.downlink
        if item.rssi is not None:
            node.rssi = item.rssi
        if not node.online:
            node.online = True
            batch.records.append(self._status_record(node, True, "message received", unsynced))
        for message in self._boots.check(node, item):
            if message.message.header.type == MsgType.EVENT:
                self._event(batch, node, message, unsynced)
            else:
                self._control(batch, node, message, unsynced)

    def _can_ack(self, item: Inbound) -> bool:
        return item.downlink is not None and item.transport in self._ack_transports

    def _event(self, batch: _Batch, node: LiveNode, item: Inbound, unsynced: str | None) -> None:
        h = item.message.header
        if self._can_ack(item):
            batch.ack.add(node.node_id)
        if h.seq == 0:
            self.c["rejected_event_seq_0"] += 1
            return
        seq = node.state.seq
        arrival = seq.classify(h.boot_id, h.seq)
        if arrival == Arrival.AHEAD:
            if item.downlink is not None:
                self._ahead(node, h.seq)
                return
            arrival = Arrival.NEW  # a node that never resends: given up below at once
        if arrival == Arrival.DUPLICATE:
            self.c["duplicates"] += 1
            return
        if arrival == Arrival.STALE:
            self._bad_input(
                "rejected_stale",
                f"stale:{h.node_id}",
                "dropped an event of node %s from boot %d, older than its current boot %d",
                node_hex(h.node_id),
                h.boot_id,
                seq.boot_id,
            )
            return
        ts = self._stamp(node, item)
        if self._verification is not None:
            batch.verify.append((len(batch.records), item))
        batch.records.append(self._record(RecordKind.EVENT, node, item, ts, unsynced))
        if item.downlink is None:
            # a node that cannot be acknowledged never resends: what it skipped, nobody
            # heard (an advert missed by the scanner), and waiting for it would only
            # grow the set of seqs above the gap
            self.c["events_lost_unheard"] += seq.give_up_below(h.seq)
        seq.record(h.boot_id, h.seq)
        self.c["events"] += 1

    def _ahead(self, node: LiveNode, seq: int) -> None:
        """An EVENT too far above an open gap: the node keeps it and resends it."""
        self._bad_input(
            "events_deferred_gap",
            f"ahead:{node.node_id}",
            "node %s: EVENT %d waits on the node: a gap at seq %d is open with %d events "
            "held above it; nothing past the gap is acknowledged until the node resends "
            "the missing events or its retx_floor says it no longer holds them",
            node_hex(node.node_id),
            seq,
            node.state.seq.contiguous + 1,
            len(node.state.seq.above),
        )

    def _control(self, batch: _Batch, node: LiveNode, item: Inbound, unsynced: str | None) -> None:
        msg = item.message
        h = msg.header
        arrival = node.state.seq.accept_control(
            h.boot_id, h.type, h.uptime_ms, authenticated=node.key is not None
        )
        if arrival != Arrival.NEW:
            self.c[f"rejected_{arrival.value}"] += 1
            return
        body = msg.body
        if isinstance(body, CommandAck):
            self._router.resolve(node.node_id, body)
            return
        if isinstance(body, Heartbeat):
            self._floor(node, h.boot_id, h.seq, body.retx_floor, item.port)
            if self._can_ack(item):
                batch.ack.add(node.node_id)
        elif isinstance(body, Info):
            node.set_info(body, h.boot_id)
            node.state.info = msg.raw
        kind = _KIND_OF[h.type]
        ts = self._stamp(node, item)
        batch.records.append(self._record(kind, node, item, ts, unsynced))

    def _floor(self, node: LiveNode, boot_id: int, seq: int, floor: int, port: str) -> None:
        """A heartbeat's retx_floor: events below it the node will never resend."""
        lost = node.state.seq.skip_below(boot_id, floor, seq)
        name = node_hex(node.node_id)
        if lost is None:
            self._bad_input(
                "rejected_retx_floor",
                f"floor:{node.node_id}",
                "node %s on %s sent a heartbeat with retx_floor %d, above its last EVENT "
                "%d + 1: the floor is ignored, the heartbeat kept (a firmware bug?)",
                name,
                port,
                floor,
                seq,
            )
        elif lost:
            self._bad_input(
                "events_lost_at_node",
                f"lost:{node.node_id}",
                "node %s no longer holds %d event(s) the gateway never received (its "
                "retransmit ring overflowed); they are given up",
                name,
                lost,
                count=lost,
            )

    @staticmethod
    def _record(
        kind: RecordKind, node: LiveNode, item: Inbound, ts: int, unsynced: str | None
    ) -> NewRecord:
        h = item.message.header
        return NewRecord(
            kind,
            h.node_id,
            h.boot_id,
            h.seq,
            h.uptime_ms,
            ts,
            unsynced,
            item.transport,
            item.message.raw,
            node.state.seq.epoch,
            item.rssi,
        )

    def _stamp(self, node: LiveNode, item: Inbound) -> int:
        if item.advert is not None:
            return item.arrival_ms  # adverts carry no uptime: they are stamped on arrival
        h = item.message.header
        ts, sample = stamp(
            node.state,
            h.boot_id,
            h.uptime_ms,
            item.arrival_ms,
            fresh=h.type == MsgType.HEARTBEAT,
        )
        if sample is not Sample.USED:
            self._bad_input(
                sample.value,
                f"time:{h.node_id}",
                "node %s: %s",
                node_hex(h.node_id),
                f"uptime {h.uptime_ms} ms is further ahead than the gateway's clock allows: "
                "not used for its clock offset; stamped with the arrival time"
                if sample is Sample.AHEAD
                else "a heartbeat arrived over a minute later than its clock offset says: "
                "the offset came from a wrong uptime and starts again from this heartbeat",
            )
        return ts

    async def _send_ack(self, node: LiveNode, seq: int) -> None:
        boot, upto = node.state.seq.ack
        try:
            await downlink.send(node, Ack(boot, upto), seq)
        except OSError as exc:
            log.debug("ACK to %s not sent: %s", node_hex(node.node_id), exc)
        else:
            self.c["acks_sent"] += 1

    # ---- clock -----------------------------------------------------------------------

    async def _check_clock(self) -> None:
        synced = self._clock.synced()
        if synced == self._synced:
            if not synced:
                self._unsynced_delta = self._clock.wall_minus_boottime_ms()
            return
        self._synced = synced
        if not synced:
            log.warning(
                "wall clock lost synchronisation: new records are marked clock_synced=false"
            )
            self._unsynced_delta = self._clock.wall_minus_boottime_ms()
            return
        before = self._unsynced_delta
        self._unsynced_delta = None
        if before is None:
            return
        correction = self._clock.wall_minus_boottime_ms() - before
        n = await self._outbox.restamp(self._kernel_boot, correction)
        for node in self._registry.all():
            if node.state.offset_ms is not None:
                node.state.offset_ms += correction
            if node.state.offset_at_ms is not None:
                node.state.offset_at_ms += correction
        log.info("wall clock synchronised: re-stamped %d stored records by %+d ms", n, correction)
