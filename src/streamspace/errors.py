"""One error family shared by every StreamSpace process.

Each error carries a stable machine `code`; the HTTP and WebSocket layers map the
classes to status and close codes in one place each (control_plane/api/errors.py).
"""

from __future__ import annotations


class StreamSpaceError(Exception):
    """Base of every domain error; `code` is the stable identifier clients see."""

    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(StreamSpaceError):
    code = "not_found"


class Conflict(StreamSpaceError):
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class PermissionDenied(StreamSpaceError):
    code = "permission_denied"


class QuotaExceeded(PermissionDenied):
    """A create refused by a quota; `quota` says which (scope, resource, used, limit) for
    clients that act on it, next to the message people read."""

    code = "quota_exceeded"

    def __init__(self, message: str, *, quota: dict[str, object]) -> None:
        super().__init__(message)
        self.quota = quota


class Unauthenticated(StreamSpaceError):
    code = "unauthenticated"


class ValidationFailed(StreamSpaceError):
    code = "validation_failed"


class RateLimited(StreamSpaceError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(StreamSpaceError):
    code = "unavailable"


class TimedOut(Unavailable):
    """A peer (an agent, another replica) did not answer in time."""

    code = "timeout"


class ProtocolError(StreamSpaceError):
    code = "protocol_error"


class PlatformError(StreamSpaceError):
    code = "platform_error"


class ConfigError(StreamSpaceError):
    code = "config_error"
