"""Simulated agents for bench/hub.py: many raw WebSocket clients in one process, speaking the
real agent protocol (welcome, heartbeat, ping/pong). Driven by JSON lines on stdin:

    {"op": "connect"}                          -> {"connected": n, "failed": n, "seconds": s}
    {"op": "heartbeat", "interval": 5, "seconds": 20}
        heartbeat every `interval` s (spread evenly) for `seconds`, then go back to the
        background interval  -> {"sent": {replica index: heartbeats}, "seconds": s}
    {"op": "pause", "seconds": 10}             -> no heartbeats for a while (idle CPU window)
    {"op": "receipts"}                         -> {"receipts": {agent id: [monotonic, ...]}}
    {"op": "quit"}

The first stdin line is the setup: {"urls": [...], "agents": [[id, key, replica], ...],
"background": 30}. Exits by itself on EOF or after --lifetime seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import uvloop
import websockets
from websockets.asyncio.client import ClientConnection

CONNECT_CONCURRENCY = 48


@dataclass(eq=False)
class SimAgent:
    agent_id: str
    key: str
    replica: int
    ws: ClientConnection | None = None
    frames: int = 0
    receipts: list[float] = field(default_factory=list)

    def envelope(self, type_: str, payload: dict[str, Any]) -> str:
        self.frames += 1
        return json.dumps(
            {
                "v": 1,
                "id": f"{self.agent_id}-{self.frames}",
                "type": type_,
                "timestamp": time.time(),
                "epoch": 0,
                "payload": payload,
            }
        )

    def heartbeat(self) -> str:
        return self.envelope("heartbeat", {"activeSessions": 0, "capacity": {"maxSessions": 10}})


class Swarm:
    def __init__(self, *, urls: list[str], agents: list[SimAgent], background: float) -> None:
        self.urls, self.agents = urls, agents
        self.background = background
        self.interval = background
        self.sent: Counter[int] = Counter()
        self.readers: list[asyncio.Task[None]] = []

    async def connect_all(self) -> dict[str, Any]:
        began, gate = time.monotonic(), asyncio.Semaphore(CONNECT_CONCURRENCY)
        results = await asyncio.gather(*(self._connect(a, gate) for a in self.agents))
        return {
            "connected": sum(results),
            "failed": len(results) - sum(results),
            "seconds": round(time.monotonic() - began, 2),
        }

    async def _connect(self, agent: SimAgent, gate: asyncio.Semaphore) -> bool:
        async with gate:
            try:
                agent.ws = await websockets.connect(
                    self.urls[agent.replica].replace("http://", "ws://") + "/api/v1/agents/connect",
                    additional_headers={"X-Agent-API-Key": agent.key, "X-Agent-Epoch": "0"},
                    open_timeout=60,
                    ping_interval=None,
                    compression=None,
                )
                welcome = json.loads(await asyncio.wait_for(agent.ws.recv(), 60))
                assert welcome["type"] == "welcome", welcome
                await agent.ws.send(agent.heartbeat())  # as the real runtime does on connect
            except Exception as exc:
                print(f"{agent.agent_id}: connect failed: {exc!r}", file=sys.stderr)
                return False
        self.readers.append(asyncio.create_task(self._read(agent)))
        return True

    async def _read(self, agent: SimAgent) -> None:
        assert agent.ws is not None
        try:
            async for raw in agent.ws:
                message = json.loads(raw)
                if message["type"] == "ping":
                    agent.receipts.append(time.monotonic())
                    await agent.ws.send(agent.envelope("pong", {"pingId": message["id"]}))
        except websockets.ConnectionClosed as exc:
            print(f"{agent.agent_id}: closed {exc!r}", file=sys.stderr)

    async def heartbeats(self) -> None:
        """Spread heartbeats evenly: every tick, the next share of agents sends one."""
        live = [a for a in self.agents if a.ws is not None]
        tick, owed, i = 0.02, 0.0, 0
        while True:
            await asyncio.sleep(tick)
            if not live or self.interval <= 0:
                continue
            owed += len(live) * tick / self.interval
            while owed >= 1:
                owed -= 1
                agent = live[i % len(live)]
                i += 1
                if agent.ws is not None and agent.ws.state.name == "OPEN":
                    await agent.ws.send(agent.heartbeat())
                    self.sent[agent.replica] += 1

    async def window(self, *, interval: float, seconds: float) -> dict[str, Any]:
        self.sent.clear()
        self.interval, began = interval, time.monotonic()
        await asyncio.sleep(seconds)
        self.interval = self.background
        return {"sent": dict(self.sent), "seconds": round(time.monotonic() - began, 3)}


def quiet_collector() -> None:
    """One process here stands in for thousands of agents, each on its own host with a small
    heap. A collection over thousands of connections stopped this loop for 14-50 ms and
    delayed every pong meanwhile, a pause no real agent would add to the hub's round trips; so
    the live connections are frozen out of the collector, which stays off until the driver
    asks for receipts (between phases)."""
    gc.collect()
    gc.freeze()
    gc.disable()


async def serve(lifetime: float) -> None:
    reader = asyncio.StreamReader(limit=64 << 20)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    setup = json.loads(await reader.readline())
    swarm = Swarm(
        urls=setup["urls"],
        agents=[SimAgent(agent_id=a, key=k, replica=r) for a, k, r in setup["agents"]],
        background=float(setup["background"]),
    )
    beats: asyncio.Task[None] | None = None
    async with asyncio.timeout(lifetime):
        while line := await reader.readline():
            order = json.loads(line)
            op = order["op"]
            if op == "connect":
                answer = await swarm.connect_all()
                beats = asyncio.create_task(swarm.heartbeats())
                quiet_collector()
            elif op == "heartbeat":
                answer = await swarm.window(interval=order["interval"], seconds=order["seconds"])
            elif op == "pause":
                answer = await swarm.window(interval=0, seconds=order["seconds"])
            elif op == "receipts":
                answer = {"receipts": {a.agent_id: a.receipts for a in swarm.agents}}
                for agent in swarm.agents:
                    agent.receipts = []
                gc.collect()  # between phases, with the collector off while they run
            else:
                break
            print(json.dumps(answer), flush=True)
    if beats is not None:
        beats.cancel()
    await asyncio.gather(*(a.ws.close() for a in swarm.agents if a.ws), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lifetime", type=float, default=1800, help="exit after this, seconds")
    # uvloop, as the real agent runs (`streamspace agent`): the simulation should not cost the
    # shared cores more than the agents it stands for would.
    uvloop.run(serve(parser.parse_args().lifetime))


if __name__ == "__main__":
    main()
