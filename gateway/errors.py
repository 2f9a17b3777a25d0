"""One root exception with typed subclasses; retry decisions read ``retryable``, never text."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    retryable: bool = False


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

    retryable = True


class SinkError(GatewayError):
    """A sink lost its peer; it reconnects with backoff."""

    retryable = True


class AuthenticationError(SinkError):
    """A peer refused our credentials: retried, but at the longest backoff."""


class SourceError(GatewayError):
    """A source's device is gone or unusable; it is reopened with backoff."""

    retryable = True


class CommandError(GatewayError):
    """A command could not be delivered or answered; ``code`` is machine-readable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
