"""A uvicorn server in the test's own event loop, with the control plane's WebSocket protocol
(control_plane/asgi/wsserver.py), on a free loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from streamspace.control_plane.asgi.wsserver import LeanWebSocketProtocol
from tests.support.processes import free_port


@asynccontextmanager
async def serve(app: Any, **options: Any) -> AsyncIterator[int]:
    """Serve `app` until the block ends; yields the port. `options` go to uvicorn.Config."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, ws=LeanWebSocketProtocol, **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn has no started event
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task
