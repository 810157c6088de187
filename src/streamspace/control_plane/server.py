"""How every StreamSpace HTTP server runs (`streamspace api` and `streamspace up` alike): the
uvicorn configuration, with the project's WebSocket server. It builds no app of its own."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.asgi.wsserver import LeanWebSocketProtocol


def server_config(app: FastAPI, settings: ControlPlaneSettings) -> uvicorn.Config:
    """How every StreamSpace HTTP server runs (api and up alike)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws_max_size=1 << 20,
        timeout_graceful_shutdown=10,
        # X-Forwarded-For is honoured by the app itself, from TRUSTED_PROXIES only (app.py).
        proxy_headers=False,
        # VNC data is binary and mostly incompressible or already compressed: deflate would
        # cost more CPU than the whole relay.
        ws_per_message_deflate=False,
        ws=LeanWebSocketProtocol if settings.lean_ws_server else "websockets-sansio",
    )
