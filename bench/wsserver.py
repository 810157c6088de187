"""The control plane's WebSocket frame handling alone: a uvicorn echo server with uvicorn's own
`websockets-sansio` protocol (the baseline) and with ours (control_plane/asgi/wsserver.py), side by
side, driven by one `websockets` client. Prints the server process's CPU per echoed message
(small JSON frames, as agents send) and per MB (256 KiB frames, as VNC chunks travel).

    .venv/bin/python bench/wsserver.py [--small 20000] [--large 800] [--runs 2]

The server runs in its own process (uvloop, as `streamspace api`); its CPU comes from
/proc/<pid>/stat, so the client's own cost is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.processes import free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
PONG = '{"v":1,"id":"%d","type":"pong","timestamp":"2026-11-27T00:00:00Z","epoch":1,"payload":{"pingId":"p"}}'

SERVER = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from streamspace.control_plane.asgi.wsserver import LeanWebSocketProtocol

async def echo(ws):
    await ws.accept()
    while True:
        m = await ws.receive()
        if m["type"] == "websocket.disconnect":
            return
        if m.get("bytes") is not None:
            await ws.send_bytes(m["bytes"])
        else:
            await ws.send_text(m["text"])

extra = {"ws": LeanWebSocketProtocol} if sys.argv[2] == "lean" else {"ws": "websockets-sansio"}
uvicorn.run(Starlette(routes=[WebSocketRoute("/", echo)]), host="127.0.0.1",
            port=int(sys.argv[1]), log_level="warning", ws_max_size=1 << 20,
            ws_per_message_deflate=False, **extra)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


async def measure(kind: str, small: int, large: int) -> tuple[float, float]:
    port = free_port()
    server = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER, str(port), kind)
    try:
        for _ in range(100):
            try:
                ws = await websockets.connect(
                    f"ws://127.0.0.1:{port}/", compression=None, max_size=None
                )
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the echo server did not start")
        async with ws:
            for i in range(200):  # warm up
                await ws.send(PONG % i)
                await ws.recv()
            before = cpu_seconds(server.pid)
            for i in range(small):
                await ws.send(PONG % i)
                await ws.recv()
            per_message = (cpu_seconds(server.pid) - before) / small * 1e6
            chunk = os.urandom(256 * 1024 + 4)
            before = cpu_seconds(server.pid)
            for _ in range(large):
                await ws.send(chunk)
                await ws.recv()
            per_mb = (cpu_seconds(server.pid) - before) / (large * len(chunk) / 1e6) * 1e3
        return per_message, per_mb
    finally:
        server.terminate()
        await server.wait()


async def run(args: argparse.Namespace) -> None:
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"server CPU per echoed message ({args.small} small) and per MB ({args.large} x 256 KiB)")
    print(f"{'protocol':34} {'µs/message':>11} {'ms/MB':>8}")
    for run_no in range(args.runs):
        stock = await measure("stock", args.small, args.large)
        lean = await measure("lean", args.small, args.large)
        print(f"{'uvicorn websockets-sansio (base)':34} {stock[0]:11.1f} {stock[1]:8.2f}")
        print(f"{'streamspace wsserver':34} {lean[0]:11.1f} {lean[1]:8.2f}")
        print(
            f"{'  ratio (run ' + str(run_no + 1) + ')':34} {lean[0] / stock[0]:11.2f} "
            f"{lean[1] / stock[1]:8.2f}"
        )
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20000)
    parser.add_argument("--large", type=int, default=800)
    parser.add_argument("--runs", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
