"""SIGHUP: what can change without a restart is applied in place; the rest is named.

Reloaded: the node entries (keys, names, groups, allowed commands), the log level, and the
command allow-lists of both bridges. Everything else (ports, brokers, the outbox, ...) is
compared with the running configuration, and each changed option is named in one log line
as taking effect at the next restart. A file that does not validate changes nothing: its
problems are logged, each naming the field, and the gateway goes on as it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.config import Config, load_config
from gateway.errors import ConfigError
from gateway.logs import set_level
from gateway.systemd import notify

if TYPE_CHECKING:
    from gateway.service import Gateway

log = logging.getLogger(__name__)

# options a reload applies: (section, key)
RELOADED = (("nodes", "nodes"), ("log", "level"), ("mqtt", "commands"), ("thingsboard", "commands"))


def needs_restart(old: Config, new: Config) -> list[str]:
    """``section.option`` of every changed option a reload does not apply."""
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    for section, key in RELOADED:
        a[section].pop(key, None)
        b[section].pop(key, None)
    changed = []
    for section in a:
        if a[section] == b[section]:
            continue
        if isinstance(a[section], dict) and isinstance(b[section], dict):
            keys = sorted(set(a[section]) | set(b[section]))
            changed += [f"{section}.{k}" for k in keys if a[section].get(k) != b[section].get(k)]
        else:
            changed.append(section)
    return changed


def apply(gw: Gateway, new: Config) -> None:
    gw.registry.reload(new.nodes)
    set_level(new.log.level)
    allowed = {"mqtt": new.mqtt.commands, "thingsboard": new.thingsboard.commands}
    for sink in gw.sinks:
        sink.set_allowed_commands(list(allowed.get(sink.name, [])))
    later = needs_restart(gw.config, new)
    # what was applied is the running configuration now; the rest stays as started
    gw.config = gw.config.model_copy(
        update={
            "nodes": gw.config.nodes.model_copy(update={"nodes": new.nodes.nodes}),
            "log": gw.config.log.model_copy(update={"level": new.log.level}),
            "mqtt": gw.config.mqtt.model_copy(update={"commands": new.mqtt.commands}),
            "thingsboard": gw.config.thingsboard.model_copy(
                update={"commands": new.thingsboard.commands}
            ),
        }
    )
    log.warning(
        "reloaded: %d node entries, log level %s, command allow-lists%s",
        len(new.nodes.nodes),
        new.log.level,
        f"; changed but applied only at the next restart: {', '.join(later)}" if later else "",
    )


async def reload(gw: Gateway, path: Path) -> None:
    notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as exc:
        for field, problem, hint in exc.problems:
            fix = f" ({hint})" if hint else ""
            log.error("reload refused, nothing changed: %s: %s%s", field, problem, fix)
    else:
        apply(gw, new)
    finally:
        notify("READY=1")
