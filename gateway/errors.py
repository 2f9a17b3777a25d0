"""One root exception with typed subclasses: callers tell errors apart by type, never by text.

Only errors something raises live here; peers' own errors (aiomqtt.MqttError, OSError
from a serial port) are handled where they arise.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is invalid; ``problems`` holds (field path, message, hint)."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        self.problems = problems
        lines = [f"{path}: {msg}" + (f" ({hint})" if hint else "") for path, msg, hint in problems]
        super().__init__("\n".join(lines))


class MissingExtraError(GatewayError):
    """An optional feature was configured without its extra installed."""

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the '{extra}' extra: pip install 'tinyml-gateway[{extra}]'"
        )


class OutboxError(GatewayError):
    """The outbox database cannot be used (not a database, corrupt, unwritable)."""


class OutboxFullError(OutboxError):
    """The disk under the outbox is full; writes resume when space returns."""
