"""Streaming end to end: a real VNC client and headless Chromium reach real session containers
through the control plane and the agent, on one replica and across replicas."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import uuid
from collections.abc import AsyncIterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import redis.asyncio as aioredis
from sqlalchemy import update
from sqlalchemy.ext.asyncio import create_async_engine

from streamspace.control_plane.db.records import TemplateRecord
from tests.support.browser import ARTIFACTS, DISTINCT_COLOURS, chromium
from tests.support.cluster import Cluster, cluster, eventually
from tests.support.docker import cleanup, docker_cli
from tests.support.metrics import scrape, total, value
from tests.support.vnc import framebuffer_update, stream_url, vnc_client

pytestmark = [pytest.mark.docker, pytest.mark.postgres]
FAST = {"STREAMSPACE_ACTIVITY_FLUSH_INTERVAL": "0.5", "STREAMSPACE_REAPER_INTERVAL": "1"}


@pytest.fixture
async def streaming(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    session_image: str,
) -> AsyncIterator[tuple[Cluster, str, dict[str, str]]]:
    replicas, with_redis = getattr(request, "param", (1, False))
    agent_id = f"docker-stream-{uuid.uuid4().hex[:8]}"
    network = f"streamspace-test-{agent_id}"
    async with cluster(
        tmp_path, replicas=replicas, redis=with_redis, lb=with_redis, extra_env=FAST
    ) as c:
        try:
            admin = await c.token(c.replicas[0].url)
            url = c.lb.url if c.lb is not None else c.replicas[0].url
            c.agent(
                agent_id,
                url=url,
                extra={"PLATFORM": "docker", "DOCKER_NETWORK": network, "HEARTBEAT_INTERVAL": "2"},
            )
            await c.approve(agent_id, admin)
            await c.wait_online(agent_id, admin)
            yield c, agent_id, admin
        finally:
            for proc in c.others:
                proc.stop()
            await asyncio.to_thread(cleanup, agent_id, network)


async def running_session(c: Cluster, admin: dict[str, str]) -> str:
    r = await c.call(
        c.replicas[0].url, "POST", "/api/v1/sessions", admin, json={"template": "terminal"}
    )
    assert r.status_code == 202, r.text
    sid = str(r.json()["id"])
    await c.wait_state(sid, "running", admin, timeout=60)
    return sid


async def test_vnc_client_through_one_replica(
    streaming: tuple[Cluster, str, dict[str, str]],
) -> None:
    c, _, admin = streaming
    sid = await running_session(c, admin)
    async with vnc_client(await stream_url(c.replicas[0].url, sid, admin)) as client:
        assert await framebuffer_update(client) == (1280, 800)


@pytest.mark.redis
@pytest.mark.parametrize("streaming", [(3, True)], indirect=True)
async def test_vnc_client_across_replicas_never_through_redis(
    streaming: tuple[Cluster, str, dict[str, str]],
) -> None:
    c, agent_id, admin = streaming
    holder = (await c.wait_online(agent_id, admin))["pod_name"]
    other = next(r for r in c.replicas if r.pod != holder)
    sid = await running_session(c, admin)
    assert c.redis is not None
    redis = aioredis.Redis(port=c.redis.port)
    before = int((await redis.info("stats"))["total_net_input_bytes"])
    async with vnc_client(await stream_url(other.url, sid, admin)) as client:
        for _ in range(3):  # ~12 MB of raw framebuffer through the peer relay
            assert await framebuffer_update(client) == (1280, 800)
    moved = int((await redis.info("stats"))["total_net_input_bytes"]) - before
    await redis.aclose()
    assert moved < 500_000, f"{moved} bytes reached Redis while streaming"


@pytest.mark.redis
@pytest.mark.parametrize("streaming", [(3, True)], indirect=True)
async def test_idle_session_hibernated_once_and_woken_by_the_viewer(
    streaming: tuple[Cluster, str, dict[str, str]],
) -> None:
    c, _, admin = streaming
    sid = await running_session(c, admin)
    await docker_cli(
        "exec", "-u", "user", f"ss-{sid}", "sh", "-c", "echo intact > /home/user/f.txt"
    )
    engine = create_async_engine(c.env["DATABASE_URL"])
    async with engine.begin() as conn:
        await conn.execute(
            update(TemplateRecord).where(TemplateRecord.name == "terminal").values(idle_timeout_s=3)
        )
    await c.wait_state(sid, "hibernated", admin, timeout=30)
    lines = [
        r.pod
        for r in c.replicas
        for line in r.log().splitlines()
        if f"hibernate session {sid}" in line
    ]
    assert len(lines) == 1, lines  # exactly one replica did it
    async with engine.begin() as conn:
        await conn.execute(
            update(TemplateRecord)
            .where(TemplateRecord.name == "terminal")
            .values(idle_timeout_s=3600)
        )
    await engine.dispose()
    async with vnc_client(await stream_url(c.replicas[1].url, sid, admin)) as client:
        assert await framebuffer_update(client, timeout=60) == (1280, 800)
    assert await c.session_state(c.replicas[0].url, sid, admin) == "running"
    out = await docker_cli("exec", "-u", "user", f"ss-{sid}", "cat", "/home/user/f.txt")
    assert out.strip() == "intact"


@pytest.mark.redis
@pytest.mark.parametrize("streaming", [(3, True)], indirect=True)
async def test_killing_the_agents_replica_mid_stream_the_viewer_goes_on(
    streaming: tuple[Cluster, str, dict[str, str]],
) -> None:
    """An RFB client on another replica keeps its connection while the agent moves: the
    same connection, with no new handshake, gets framebuffer updates from TigerVNC after the
    agent has reconnected elsewhere (the stream was resumed, not reopened)."""
    c, agent_id, admin = streaming
    holder = (await c.wait_online(agent_id, admin))["pod_name"]
    viewer_side = next(r for r in c.replicas if r.pod != holder)
    sid = await running_session(c, admin)
    started = json.loads(await docker_cli("inspect", f"ss-{sid}"))[0]["State"]["StartedAt"]
    async with vnc_client(await stream_url(viewer_side.url, sid, admin)) as client:
        await framebuffer_update(client)
        c.replica(holder).kill()

        async def moved() -> bool:
            return (await c.wait_online(agent_id, admin))["pod_name"] != holder

        await eventually(moved, timeout=60, what="the agent on another replica")
        for _ in range(3):
            assert await framebuffer_update(client, timeout=30) == (1280, 800)
    assert "resuming at byte" in viewer_side.log()
    assert await c.session_state(viewer_side.url, sid, admin) == "running"
    assert json.loads(await docker_cli("inspect", f"ss-{sid}"))[0]["State"]["StartedAt"] == started


async def test_viewer_page_in_chromium(streaming: tuple[Cluster, str, dict[str, str]]) -> None:
    c, _, admin = streaming
    sid = await running_session(c, admin)
    token = admin["Authorization"].split()[1]
    ARTIFACTS.mkdir(exist_ok=True)
    marker = f"typed-{uuid.uuid4().hex[:6]}"
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        await page.add_init_script(f"localStorage.setItem('streamspace_token', '{token}')")
        await page.goto(f"{c.replicas[0].url}/sessions/{sid}/view")
        await page.wait_for_selector("body[data-state=connected]", timeout=30_000)
        await page.click("#screen canvas")
        await page.keyboard.type(f"echo {marker} > /tmp/{marker}; echo shown-{marker}\n", delay=20)

        async def typed() -> bool:  # the keystrokes reached the session
            out = await docker_cli("exec", f"ss-{sid}", "sh", "-c", f"cat /tmp/{marker} || true")
            return out.strip() == marker

        async def drawn() -> bool:  # the remote desktop was drawn, not a blank canvas
            return int(await page.locator("#screen canvas").evaluate(DISTINCT_COLOURS)) > 2

        await eventually(typed, timeout=30, interval=0.25, what=f"/tmp/{marker} in the session")
        await eventually(drawn, timeout=30, interval=0.25, what="the desktop on the canvas")
        await page.screenshot(path=str(ARTIFACTS / "viewer-terminal.png"))


STOCK_NOVNC = Path("/usr/share/novnc")  # Debian's novnc package, not the product's copy


@contextlib.asynccontextmanager
async def serving_directory(directory: Path) -> AsyncIterator[str]:
    """A plain static web server on loopback (a page from a public origin may not open a
    WebSocket to a loopback address in Chromium); yields its origin."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()


async def test_debians_stock_novnc_shows_a_session_whose_vnc_needs_a_password(
    streaming: tuple[Cluster, str, dict[str, str]],
) -> None:
    """The session's VNC requires the agent's secret, yet an unmodified noVNC (Debian's
    vnc_lite.html, which would ask for a password if the stream wanted one) draws the desktop
    through the product's stream: the agent answers the password challenge itself."""
    if not (STOCK_NOVNC / "vnc_lite.html").exists():
        pytest.skip("Debian's novnc package is not installed")
    c, _, admin = streaming
    sid = await running_session(c, admin)
    env = json.loads(await docker_cli("inspect", f"ss-{sid}"))[0]["Config"]["Env"]
    assert any(e.startswith("VNC_PASSWORD=") and len(e) > 13 for e in env)
    stream = urlsplit(await stream_url(c.replicas[0].url, sid, admin))
    query = urlencode(
        {
            "host": stream.hostname,
            "port": stream.port,
            "path": f"{stream.path.lstrip('/')}?{stream.query}",
            "autoconnect": "true",
        }
    )

    async with chromium() as browser, serving_directory(STOCK_NOVNC) as origin:
        page = await browser.new_page(viewport={"width": 1400, "height": 900})
        seen: list[str] = []  # what the page did, for the failure message
        page.on("console", lambda message: seen.append(f"console: {message.text}"))
        page.on("requestfailed", lambda r: seen.append(f"failed: {r.url[:80]} {r.failure}"))
        page.on("websocket", lambda ws: seen.append(f"websocket: {ws.url[:80]}"))
        await page.goto(f"{origin}/vnc_lite.html?{query}")
        status = page.locator("#status")

        async def connected() -> bool:
            text = await status.text_content() or ""
            seen.append(f"status: {text}")
            return text.startswith("Connected to ")

        async def drawn() -> bool:  # the remote desktop was drawn, not a blank canvas
            return int(await page.locator("#screen canvas").evaluate(DISTINCT_COLOURS)) > 2

        try:
            await eventually(connected, timeout=30, interval=0.25, what="noVNC connected")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the page: {list(dict.fromkeys(seen))}") from None
        await eventually(drawn, timeout=30, interval=0.25, what="the desktop on the canvas")
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "stock-novnc-terminal.png"))


async def test_a_stalled_viewer_stalls_only_itself(
    streaming: tuple[Cluster, str, dict[str, str]],
) -> None:
    c, agent_id, admin = streaming
    sid, other = await running_session(c, admin), await running_session(c, admin)
    base = c.replicas[0].url
    stalled = await websockets_connect(await stream_url(base, sid, admin))
    await stalled.recv()  # banner
    await stalled.send(b"RFB 003.008\n")
    offered = bytearray()  # the security types, as a client waits for them before choosing
    while not offered or len(offered) < 1 + offered[0]:
        offered += await stalled.recv()
    assert 1 in offered[1:], offered  # "None"; from now on the viewer never reads again
    await stalled.send(b"\x01")
    await stalled.send(b"\x01")
    for _ in range(6):  # ask for ~24 MB of frames it will never read
        await stalled.send(bytes([3, 0, 0, 0, 0, 0, 5, 0, 3, 32]))
    try:
        # another viewer of the same session and a viewer of another session keep streaming
        for target in (sid, other):
            async with vnc_client(await stream_url(base, target, admin)) as client:
                assert await framebuffer_update(client) == (1280, 800)
        # and the agent's control messages still flow: a hibernate completes
        r = await c.call(base, "POST", f"/api/v1/sessions/{other}/hibernate", admin)
        assert r.status_code == 202
        await c.wait_state(other, "hibernated", admin, timeout=30)
        assert (await c.wait_online(agent_id, admin))["status"] == "online"
    finally:
        await stalled.close()


async def websockets_connect(url: str):  # type: ignore[no-untyped-def]
    import websockets

    return await websockets.connect(url, subprotocols=["binary"], max_size=None, max_queue=1)  # type: ignore[list-item]


@pytest.mark.parametrize("streaming", [(3, True)], indirect=True)
async def test_the_viewer_page_reconnects_by_itself_when_its_replica_dies(
    streaming: tuple[Cluster, str, dict[str, str]],
) -> None:
    """Through the load balancer, the replica carrying the viewer's socket is SIGKILLed: the
    page says "Reconnecting…" (never an error) and shows the desktop again through another
    replica, with no click."""
    c, _, admin = streaming
    assert c.lb is not None
    sid = await running_session(c, admin)
    token = admin["Authorization"].split()[1]
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.add_init_script(f"localStorage.setItem('streamspace_token', '{token}')")
        await page.goto(f"{c.lb.url}/sessions/{sid}/view")
        await page.wait_for_selector("body[data-state=connected]", timeout=30_000)
        await page.evaluate(
            """() => {
                window.seenStates = [];
                new MutationObserver(() => window.seenStates.push(document.body.dataset.state))
                    .observe(document.body, { attributes: true, attributeFilter: ['data-state'] });
            }"""
        )
        carrier = await eventually(lambda: _viewer_replica(c), what="the viewer's replica")
        c.replica(carrier).kill()

        async def back() -> bool:
            # page.evaluate, not wait_for_function: the page's CSP forbids the eval the
            # latter's polling uses
            return bool(
                await page.evaluate(
                    "() => document.body.dataset.state === 'connected'"
                    " && window.seenStates.length > 0"
                )
            )

        await eventually(back, timeout=60, interval=0.1, what="the viewer connected again")
        seen = await page.evaluate("window.seenStates")
        assert "reconnecting" in seen
        assert not {"disconnected", "ended"} & set(seen), seen

        async def drawn() -> bool:
            return int(await page.locator("#screen canvas").evaluate(DISTINCT_COLOURS)) > 2

        await eventually(drawn, timeout=30, interval=0.25, what="the desktop drawn again")


async def _viewer_replica(c: Cluster) -> str | None:
    """The replica whose metrics count the open viewer socket (path local or peer)."""
    for replica in c.replicas:
        samples = await scrape(replica.url)
        if (
            total(samples, "streamspace_viewers")
            - value(samples, "streamspace_viewers", path="relay")
            >= 1
        ):
            return replica.pod
    return None
