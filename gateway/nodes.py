"""Which nodes the gateway knows, what it may do with them, and whether they are online."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway import downlink
from gateway.config import NodeSection, NodesSection
from gateway.fields import NodeMeta
from gateway.logs import RateLimitedLog
from gateway.model import Downlink, node_hex
from gateway.outbox import NodeState
from gateway.protocol import Info, decode

if TYPE_CHECKING:
    from gateway.boots import Candidate

log = logging.getLogger(__name__)

OFFLINE_AFTER_PERIODS = 3


@dataclass(slots=True)
class LiveNode:
    node_id: int
    state: NodeState
    config: NodeSection | None
    default_period_s: float
    online: bool = False
    last_seen: float = 0.0  # monotonic seconds
    transport: str = ""
    port: str = ""
    downlink: Downlink | None = None
    rssi: int | None = None  # dBm of its last advertisement (BLE nodes)
    info: Info | None = None
    info_boot: int | None = None  # the boot the INFO came from
    info_asked: bool = False  # get_info sent because no INFO was seen (once per boot)
    meta: NodeMeta = field(default_factory=NodeMeta)
    # the boot stage's (gateway/boots.py) memory, not stored: boot ids waiting for
    # confirmation, and the uptimes heard while the current boot is not confirmed
    candidates: dict[int, Candidate] = field(default_factory=dict)
    confirming: set[int] = field(default_factory=set)

    @property
    def key(self) -> bytes | None:
        return self.config.key_bytes if self.config else None

    @property
    def heartbeat_period_s(self) -> float:
        if self.info is not None and self.info.heartbeat_period_s:
            return float(self.info.heartbeat_period_s)
        return self.default_period_s

    def set_info(self, info: Info, boot_id: int) -> None:
        self.info = info
        self.info_boot = boot_id
        self.meta = NodeMeta(
            self.config.name if self.config else None,
            self.config.group if self.config else None,
            info.labels,
        )


class NodeRegistry:
    """Known nodes, at most ``max_nodes``; configured nodes are never forgotten.

    At the cap a new node always gets in (unless every known node is configured), in
    the place of an unconfigured node: first one whose boot is not confirmed (a made-up
    id sends one frame), then one of the source (port or adapter) that holds the most of
    them, so that a flood on one source never pushes out the nodes of another; there,
    offline before online, and the one heard longest ago.
    ``forgotten`` holds ids whose stored state the next commit deletes; ``evicted`` the
    nodes forgotten online, whose offline status the pipeline writes.
    """

    def __init__(
        self, cfg: NodesSection, stored: dict[int, NodeState], news: RateLimitedLog
    ) -> None:
        self._cfg = cfg
        self._configured = {int(k, 16): v for k, v in cfg.nodes.items()}
        self._nodes: dict[int, LiveNode] = {}
        self.news = news
        self.forgotten: set[int] = set()
        self.evicted: list[LiveNode] = []
        for node_id, state in stored.items():
            state.downlink_seq = downlink.after_restart(state.downlink_seq)
            self._add(node_id, state)
        for node_id in self._configured:
            if node_id not in self._nodes:
                self._add(node_id, NodeState())

    def _add(self, node_id: int, state: NodeState) -> LiveNode:
        conf = self._configured.get(node_id)
        node = LiveNode(node_id, state, conf, self._cfg.default_heartbeat_period_s)
        node.meta = NodeMeta(conf.name if conf else None, conf.group if conf else None)
        if state.info is not None:
            try:
                msg = decode(state.info)
            except ValueError:
                msg = None
            if msg is not None and isinstance(msg.body, Info):
                node.set_info(msg.body, msg.header.boot_id)
        self._nodes[node_id] = node
        return node

    def admit(self, node_id: int, port: str) -> LiveNode | None:
        """The node, or None when policy refuses it (unknown and rejected, or the cap
        reached with every known node configured). ``port``: where it was heard."""
        node = self._nodes.get(node_id)
        if node is not None:
            return node
        if self._cfg.unknown == "reject":
            return None
        if len(self._nodes) >= self._cfg.max_nodes and not self._make_room(node_id, port):
            return None
        self.news.info("new-node", "new node %s on %s", node_hex(node_id), port)
        self.forgotten.discard(node_id)
        return self._add(node_id, NodeState())

    def _make_room(self, for_id: int, port: str) -> bool:
        candidates = [n for n in self._nodes.values() if n.config is None]
        if not candidates:
            return False
        crowd = Counter(n.port for n in candidates)

        def order(n: LiveNode) -> tuple[bool, int, bool, bool, float]:
            # unconfirmed boot first (a made-up id sends one frame), then the most
            # crowded source (the newcomer's own on a tie), offline, heard longest ago
            return n.state.seq.confirmed, -crowd[n.port], n.port != port, n.online, n.last_seen

        victim = min(candidates, key=order)
        del self._nodes[victim.node_id]
        self.forgotten.add(victim.node_id)
        if victim.online:
            self.evicted.append(victim)
        self.news.warning(
            "node-cap",
            "[nodes] max_nodes (%d) reached: forgot unconfigured node %s (%s) on %s to "
            'admit %s (raise max_nodes, or list your nodes and set unknown = "reject")',
            self._cfg.max_nodes,
            node_hex(victim.node_id),
            "boot not confirmed"
            if not victim.state.seq.confirmed
            else ("offline" if not victim.online else "heard longest ago"),
            victim.port or "no port since the start",
            node_hex(for_id),
        )
        return True

    def take_evicted(self) -> list[LiveNode]:
        """The nodes forgotten while online since the last call (taken once)."""
        out, self.evicted = self.evicted, []
        return out

    def get(self, node_id: int) -> LiveNode | None:
        return self._nodes.get(node_id)

    def meta(self, node_id: int) -> NodeMeta:
        node = self._nodes.get(node_id)
        return node.meta if node else NodeMeta()

    def all(self) -> list[LiveNode]:
        return list(self._nodes.values())

    def reload(self, cfg: NodesSection) -> None:
        """The node entries of a reloaded configuration (SIGHUP): keys, names, groups and
        allowed commands take effect at once; a node no longer listed becomes unconfigured.
        The policy keys (unknown, max_nodes, default period) keep their start-up values."""
        self._configured = {int(k, 16): v for k, v in cfg.nodes.items()}
        for node_id, node in self._nodes.items():
            conf = self._configured.get(node_id)
            node.config = conf
            node.meta = NodeMeta(
                conf.name if conf else None, conf.group if conf else None, node.meta.labels
            )
        for node_id in self._configured:
            if node_id not in self._nodes:
                self._add(node_id, NodeState())

    def allows(self, node_id: int, command: str) -> bool:
        conf = self._configured.get(node_id)
        return conf is None or conf.commands is None or command in conf.commands

    def timed_out(self, now: float) -> list[LiveNode]:
        return [
            n
            for n in self._nodes.values()
            if n.online and now - n.last_seen > OFFLINE_AFTER_PERIODS * n.heartbeat_period_s
        ]

    def on_port(self, port: str) -> list[LiveNode]:
        return [n for n in self._nodes.values() if n.online and n.port == port]
