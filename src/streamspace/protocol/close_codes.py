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
