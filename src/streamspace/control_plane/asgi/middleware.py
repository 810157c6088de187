"""ASGI middleware: request ids, latency metrics, and the request body size limit."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from prometheus_client import Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from streamspace.control_plane.asgi.request_context import client_address_var, request_id_var


class _TooLarge(Exception):
    pass


class RequestMiddleware:
    """Tags each HTTP request with an id (X-Request-ID), times it, and refuses oversized bodies
    with 413 before a handler reads them, and URLs carrying NUL with 400. `latency` is the
    histogram (labels method, route, status) each request's duration goes to."""

    def __init__(self, app: ASGIApp, *, latency: Histogram, max_body: int) -> None:
        self.app, self.latency, self.max_body = app, latency, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        rid = headers.get(b"x-request-id", b"").decode()[:64] or uuid.uuid4().hex[:16]
        token = request_id_var.set(rid)
        client = scope.get("client")
        address_token = client_address_var.set(client[0] if client else "")
        start, status = time.perf_counter(), 500
        declared = headers.get(b"content-length", b"0")
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise _TooLarge
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", rid.encode()))
            await send(message)

        try:
            if declared.isdigit() and int(declared) > self.max_body:
                raise _TooLarge
            if _nul_in_url(scope):
                status = 400
                await _send_json(
                    send, 400, _error("bad_request", "NUL (%00) is not allowed in URLs")
                )
                return
            await self.app(scope, limited_receive, send_with_id)
        except _TooLarge:
            status = 413
            message = f"request body over {self.max_body} bytes"
            await _send_json(send, 413, _error("payload_too_large", message))
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            self.latency.labels(method=scope["method"], route=path, status=str(status)).observe(
                time.perf_counter() - start
            )
            request_id_var.reset(token)
            client_address_var.reset(address_token)


def _nul_in_url(scope: Scope) -> bool:
    """PostgreSQL refuses NUL in text, so a NUL in a path or query parameter is refused here."""
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"\x00" in query or b"%00" in query


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    raw = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})
