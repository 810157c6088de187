"""The one place that maps errors to HTTP: every error body is {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection

from streamspace.control_plane.db.engine import unavailable
from streamspace.errors import (
    ConfigError,
    Conflict,
    NotFound,
    PermissionDenied,
    PlatformError,
    ProtocolError,
    QuotaExceeded,
    RateLimited,
    StreamSpaceError,
    TimedOut,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[StreamSpaceError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (PermissionDenied, 403),
    (Unauthenticated, 401),
    (ValidationFailed, 422),
    (RateLimited, 429),
    (TimedOut, 504),
    (Unavailable, 503),
    (ProtocolError, 400),
    (PlatformError, 502),
    (ConfigError, 500),
]
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


def error_body(code: str, message: str) -> dict[str, dict[str, Any]]:
    return {"error": {"code": code, "message": message}}


def status_for(exc: StreamSpaceError) -> int:
    return next((status for cls, status in STATUS if isinstance(exc, cls)), 500)


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StreamSpaceError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if isinstance(exc, Unauthenticated):
        headers = {"WWW-Authenticate": "Bearer"}
    body = error_body(exc.code, exc.message)
    if isinstance(
        exc, QuotaExceeded
    ):  # an extra member: clients reading code+message see no change
        body["error"]["quota"] = exc.quota
    return JSONResponse(body, status_code=status_for(exc), headers=headers)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return JSONResponse(
            error_body("invalid_json", "request body is not valid JSON"), status_code=400
        )
    return JSONResponse(error_body("invalid_request", _describe(exc)), status_code=422)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    return JSONResponse(
        error_body(code, message),
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


def _described(conn: HTTPConnection) -> str:
    """ "GET /path" for a request; a WebSocket (an error its endpoint let through) has no
    method, and logging one must not raise a second error in place of the first."""
    return f"{conn.scope.get('method', 'WEBSOCKET')} {conn.url.path}"


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s", _described(request))
    return JSONResponse(error_body("internal_error", "internal server error"), status_code=500)


async def _database(request: Request, exc: Exception) -> JSONResponse:
    """Pool exhausted or database unreachable: the client should retry, so 503, not 500."""
    log.warning("database unavailable on %s: %s", _described(request), type(exc).__name__)
    return JSONResponse(
        error_body("database_unavailable", "the database is busy or unreachable; retry shortly"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _driver(request: Request, exc: Exception) -> JSONResponse:
    """The database unreachable (OperationalError) or a connection lost mid-request (the server
    restarted, a proxy cut it) is the database being unavailable; other driver errors are
    bugs."""
    if unavailable(exc):
        return await _database(request, exc)
    return await _unexpected(request, exc)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StreamSpaceError, _domain)
    app.add_exception_handler(PoolTimeout, _database)
    app.add_exception_handler(DBAPIError, _driver)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
