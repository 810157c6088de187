"""The RFB readiness probe against real loopback servers: a VNC-like one, a silent one, a
wrong-protocol one and a closed port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from tests.support.processes import free_port

from streamspace.agents.platforms.rfb import read_rfb_banner

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(handler: Handler) -> AsyncIterator[int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


def answering(data: bytes) -> Handler:
    async def handle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return handle


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the probe gives up and closes
    writer.close()


async def test_a_vnc_server_answers_with_its_banner() -> None:
    async with serving(answering(b"RFB 003.008\n")) as port:
        assert await read_rfb_banner(host="127.0.0.1", port=port) == b"RFB 003.008\n"


async def test_another_protocol_is_not_vnc() -> None:
    async with serving(answering(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as port:
        assert await read_rfb_banner(host="127.0.0.1", port=port) is None


async def test_a_server_that_never_speaks_is_given_up_on_after_the_patience() -> None:
    async with serving(silent) as port:
        assert await read_rfb_banner(host="127.0.0.1", port=port, patience=0.2) is None


async def test_a_closed_port_is_not_ready() -> None:
    assert await read_rfb_banner(host="127.0.0.1", port=free_port()) is None


async def test_an_unanswered_connect_is_given_up_on_after_the_connect_patience() -> None:
    """A SYN that gets no answer (TEST-NET-1 is never routed) costs connect_patience, not
    the kernel's retry schedule: the platforms probe again at once."""
    banner = read_rfb_banner(host="192.0.2.1", port=5900, connect_patience=0.1)
    assert await asyncio.wait_for(banner, timeout=5) is None
