"""A Redis Sentinel group of the test's own, on loopback: a master, one replica and three
sentinels (quorum 2) with short failover timings, to SIGKILL the master under a running app."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.support.processes import Proc, RedisServer, free_port, wait_until

MASTER_NAME = "mymaster"


class SentinelServer(Proc):
    def __init__(self, *, log_dir: Path, master_port: int) -> None:
        self.port = free_port()
        work = log_dir / f"sentinel-{self.port}"
        work.mkdir(parents=True, exist_ok=True)
        config = work / "sentinel.conf"  # sentinel rewrites it: a file of its own
        config.write_text(
            f"""port {self.port}
bind 127.0.0.1
dir {work}
sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2
sentinel down-after-milliseconds {MASTER_NAME} 1000
sentinel failover-timeout {MASTER_NAME} 5000
sentinel parallel-syncs {MASTER_NAME} 1
"""
        )
        binary = shutil.which("redis-sentinel")
        args = [binary, str(config)] if binary else ["redis-server", str(config), "--sentinel"]
        super().__init__(name=f"sentinel-{self.port}", log_dir=log_dir, env={}, args=args)

    def start(self) -> SentinelServer:
        super().start()
        wait_until(self.ready, timeout=10, what=self.name)
        return self

    def ready(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"{self.name} exited:\n{self.log()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def client(self) -> aioredis.Redis:
        return aioredis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)


class SentinelGroup:
    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.master = RedisServer(log_dir=log_dir)
        self.replica = RedisServer(
            log_dir=log_dir, extra=["--replicaof", "127.0.0.1", str(self.master.port)]
        )
        self.sentinels = [
            SentinelServer(log_dir=log_dir, master_port=self.master.port) for _ in range(3)
        ]

    @property
    def hosts(self) -> str:
        """The REDIS_SENTINEL_HOSTS value."""
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def start(self) -> SentinelGroup:
        self.master.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        return self

    def kill(self) -> None:
        for proc in [*self.sentinels, self.replica, self.master]:
            proc.kill()

    async def master_port(self) -> int | None:
        """The master's port as the first sentinel answering names it."""
        for sentinel in self.sentinels:
            if not sentinel.alive:
                continue
            async with sentinel.client() as s:
                try:
                    reply = await s.execute_command(
                        "SENTINEL", "get-master-addr-by-name", MASTER_NAME
                    )
                except (OSError, aioredis.RedisError):
                    continue
            return int(reply[1]) if reply else None
        return None

    async def ready_for_failover(self) -> bool:
        """Every sentinel sees the master, the in-sync replica and both other sentinels."""
        for sentinel in self.sentinels:
            async with sentinel.client() as s:
                try:
                    master = await s.sentinel_master(MASTER_NAME)
                    replicas = await s.sentinel_slaves(MASTER_NAME)
                except (OSError, aioredis.RedisError):
                    return False
            if master["num-other-sentinels"] != 2 or master["flags"] != "master":
                return False
            if not any(r["flags"] == "slave" for r in replicas):
                return False
        async with aioredis.Redis(port=self.replica.port) as r:
            link = await r.info("replication")
        return bool(link.get("master_link_status") == "up")

    async def wait_ready(self, timeout: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self.ready_for_failover():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the sentinels never saw the replica and each other")
            await asyncio.sleep(0.2)


@pytest.fixture
async def sentinel_group(tmp_path: Path) -> AsyncIterator[SentinelGroup]:
    """A master, a replica and three sentinels of their own, ready, killed after the test."""
    sentinels = SentinelGroup(tmp_path).start()
    try:
        await sentinels.wait_ready()
        yield sentinels
    finally:
        sentinels.kill()
