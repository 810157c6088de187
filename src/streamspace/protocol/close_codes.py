"""WebSocket close codes shared by both ends (4000-4999 are application codes)."""

NORMAL = 1000
GOING_AWAY = 1001
SERVICE_RESTART = 1012  # the server is restarting (uvicorn's close to every socket on SIGTERM)
POLICY = 1008
TOO_BIG = 1009
UNAUTHENTICATED = 4401
FORBIDDEN = 4403
NOT_FOUND = 4404
CONFLICT = 4409  # a newer connection (higher epoch) displaced this one, or stale epoch
GONE = 4410  # a stream that cannot be resumed (the agent no longer keeps it)
PROTOCOL = 4400
UNSUPPORTED_VERSION = 4426
UNAVAILABLE = 4503

# RFC 6455: a close frame's payload is at most 125 bytes, 2 of them the code
MAX_REASON_BYTES = 123


def fit_reason(reason: str) -> str:
    """The reason cut to fit a close frame, in UTF-8 bytes and on a character boundary (a
    reason echoing non-ASCII input would otherwise make the close itself fail)."""
    data = reason.encode()
    if len(data) <= MAX_REASON_BYTES:
        return reason
    return data[:MAX_REASON_BYTES].decode(errors="ignore")
