"""What the dashboards read about streaming, measured across real replicas: a viewer on the
replica without the agent is counted there (path=peer) and on the agent's replica
(path=relay) while it is open and not after; every byte it got is in both replicas' byte
counters; the session's start is in the start-latency histogram."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import websockets

from tests.support.cluster import cluster, eventually
from tests.support.metrics import scrape, value
from tests.support.pattern import pattern_source, session_across_replicas
from tests.support.vnc import stream_url

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
WANTED = 3 << 20


async def test_viewers_bytes_and_start_latency_across_replicas(tmp_path: Path) -> None:
    async with (
        pattern_source() as port,
        cluster(tmp_path, replicas=2, redis=True, lb=False) as c,
    ):
        holder, other, admin, sid = await session_across_replicas(c, "metered", port)
        started = await scrape(holder.url)  # the agent reported the start to its replica
        assert value(started, "streamspace_session_start_seconds_count", kind="start") >= 1
        before = {pod.pod: await scrape(pod.url) for pod in (holder, other)}

        url = await stream_url(other.url, sid, admin)
        async with websockets.connect(url, subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
            await ws.send(struct.pack(">I", WANTED))
            got = 0
            while got < WANTED:
                got += len(await ws.recv())
            during = {pod.pod: await scrape(pod.url) for pod in (holder, other)}
        assert value(during[other.pod], "streamspace_viewers", path="peer") == 1
        assert value(during[holder.pod], "streamspace_viewers", path="relay") == 1
        assert value(during[holder.pod], "streamspace_viewers", path="local") == 0
        for pod, path in ((other.pod, "peer"), (holder.pod, "relay")):
            out = "streamspace_stream_bytes_total"
            grew = value(during[pod], out, direction="to_viewer", path=path) - value(
                before[pod], out, direction="to_viewer", path=path
            )
            assert grew >= WANTED, (pod, grew)
            sent = value(during[pod], out, direction="to_agent", path=path) - value(
                before[pod], out, direction="to_agent", path=path
            )
            assert sent >= 4, (pod, sent)

        async def closed() -> bool:
            for pod, path in ((other, "peer"), (holder, "relay")):
                if value(await scrape(pod.url), "streamspace_viewers", path=path) != 0:
                    return False
            return True

        await eventually(closed, what="viewer gauges back to 0")
