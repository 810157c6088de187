"""The web UI in headless Chromium against a real control plane and a real Docker agent: an admin
approves a pending agent and sees it connected; a user launches a session from the catalog,
watches it reach running, sees the desktop in the viewer, hibernates, resumes and terminates
it; a user cannot reach admin pages or another user's session. Every page, the viewer and the
API docs run under the Content-Security-Policy sent with them (no violation reported). Once on
one replica serving the UI itself, once behind nginx (deploy/nginx) with two replicas and
Redis. Screenshots of each main page go to artifacts/ui-<setup>-<page>.png."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import ARTIFACTS, DISTINCT_COLOURS, chromium
from tests.support.cluster import Cluster, cluster, eventually
from tests.support.docker import cleanup, unavailable
from tests.support.processes import Nginx

pytestmark = [pytest.mark.docker, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
UI_DIST = REPO / "ui" / "dist"
USER, USER_PASSWORD = "ulla", "ulla-pass-123"
SLOW = 90_000  # ms: a container start on a busy 2-core machine


@dataclass
class Site:
    cluster: Cluster
    url: str  # what the browser opens: the replica itself, or nginx
    agent_id: str
    name: str


@pytest.fixture(params=["one-replica", "nginx-two-replicas"])
async def site(
    request: pytest.FixtureRequest, tmp_path: Path, session_image: str
) -> AsyncIterator[Site]:
    if not (UI_DIST / "index.html").is_file():
        unavailable("the UI is not built (make setup builds ui/dist)")
    behind_nginx = request.param == "nginx-two-replicas"
    agent_id = f"docker-ui-{uuid.uuid4().hex[:8]}"
    network = f"streamspace-test-{agent_id}"
    env = {"STREAMSPACE_UI_DIR": str(UI_DIST)}
    async with cluster(
        tmp_path, replicas=2 if behind_nginx else 1, redis=behind_nginx, lb=False, extra_env=env
    ) as c:
        try:
            url = c.replicas[0].url
            if behind_nginx:
                proxy = Nginx(backends=c.replicas, ui_dir=UI_DIST, log_dir=tmp_path).start()
                c.others.append(proxy)
                url = proxy.url
            yield Site(cluster=c, url=url, agent_id=agent_id, name=request.param)
        finally:
            for proc in c.others:
                proc.stop()
            await asyncio.to_thread(cleanup, agent_id, network)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as launched:
        yield launched


# Every Content-Security-Policy violation in a page or its frames (the session viewer).
CSP_WATCH = """window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__cspViolations.push(
    `${e.violatedDirective} ${e.blockedURI} at ${e.sourceFile}:${e.lineNumber}`));"""
CSP_REFUSALS: dict[int, list[str]] = {}  # id(page): the console's CSP errors


async def new_page(browser: Any) -> Any:
    """A page in a context of its own that records what its CSP refused."""
    context = await browser.new_context(viewport={"width": 1366, "height": 800})
    await context.add_init_script(CSP_WATCH)
    page = await context.new_page()
    refused = CSP_REFUSALS.setdefault(id(page), [])
    page.on(
        "console",
        lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None,
    )
    return page


async def assert_csp_kept(page: Any) -> None:
    violations = list(CSP_REFUSALS.get(id(page), []))
    for frame in page.frames:
        violations += await frame.evaluate("window.__cspViolations || []")
    assert not violations, f"{page.url}: {violations}"


async def sign_in(browser: Any, site: Site, username: str, password: str) -> Any:
    page = await new_page(browser)
    await page.goto(f"{site.url}/")
    await page.wait_for_url(re.compile(r"/login"))  # signed out: sent to the login page
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_role("link", name="Catalog").wait_for()
    return page


async def shot(page: Any, site: Site, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"ui-{site.name}-{name}.png"))


async def state_is(page: Any, state: str, timeout: int = SLOW) -> None:
    from playwright.async_api import expect

    await expect(page.get_by_test_id("session-state")).to_have_text(state, timeout=timeout)


async def test_the_product_in_a_browser(site: Site, browser: Any) -> None:
    from playwright.async_api import expect

    c = site.cluster
    admin_api = await c.token(c.replicas[0].url)

    # -- the admin: a bad password is refused with a clear message, then in
    page = await new_page(browser)
    response = await page.goto(f"{site.url}/login")
    assert "script-src 'self';" in response.headers["content-security-policy"]  # nginx's too
    await page.get_by_label("Username").fill("admin")
    await page.get_by_label("Password").fill("wrong-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("invalid username or password")
    await shot(page, site, "login")
    await assert_csp_kept(page)
    await page.context.close()
    admin = await sign_in(browser, site, "admin", c.env["STREAMSPACE_ADMIN_PASSWORD"])

    # -- an agent registers with the bootstrap key: it shows up pending, live, and the admin
    #    approves it from the console and sees it connected
    await admin.get_by_role("link", name="Admin").click()
    await admin.get_by_role("link", name="Agents").click()
    await admin.wait_for_url(re.compile(r"/admin/agents$"))
    c.agent(
        site.agent_id,
        url=site.url,  # through nginx too: the agent socket is proxied like the rest
        extra={
            "PLATFORM": "docker",
            "DOCKER_NETWORK": f"streamspace-test-{site.agent_id}",
            "HEARTBEAT_INTERVAL": "2",
        },
    )
    row = admin.locator(f'tr[data-agent-id="{site.agent_id}"]')
    await expect(row).to_contain_text("pending", timeout=30_000)  # no reload: live update
    # row actions name their row: this is the button for this agent, whatever else is listed
    await admin.get_by_role("button", name=f"Approve agent {site.agent_id}", exact=True).click()
    await expect(row).to_contain_text("online", timeout=60_000)
    await expect(row).to_contain_text(re.compile(r"api-[ab]"))  # the replica holding it
    await shot(admin, site, "admin-agents")
    await admin.get_by_role("link", name="Replicas").click()
    await expect(admin.get_by_text("api-a").first).to_be_visible()
    await shot(admin, site, "admin-replicas")
    await admin.get_by_role("link", name="Overview").click()
    await expect(admin.get_by_text("Agents connected")).to_be_visible()
    await shot(admin, site, "admin-overview")
    await admin.get_by_role("link", name="Templates").click()
    await expect(admin.locator('tr[data-template-name="terminal"]')).to_be_visible()
    await shot(admin, site, "admin-templates")

    # -- the admin creates a user from the console
    await admin.get_by_role("link", name="Users").click()
    await admin.get_by_role("button", name="New user").click()
    dialog = admin.get_by_role("dialog")
    await dialog.get_by_label("Username").fill(USER)
    await dialog.get_by_label("Password").fill(USER_PASSWORD)
    await dialog.get_by_role("button", name="Create user").click()
    await expect(admin.locator(f'tr[data-username="{USER}"]')).to_be_visible()
    await shot(admin, site, "admin-users")
    await assert_csp_kept(admin)

    # another user's session, for the isolation checks below
    r = await c.call(
        c.replicas[0].url, "POST", "/api/v1/sessions", admin_api, json={"template": "terminal"}
    )
    assert r.status_code == 202, r.text
    admins_session = r.json()["id"]

    # -- the user: launch from the catalog, watch it start, see the desktop
    user = await sign_in(browser, site, USER, USER_PASSWORD)
    await expect(user.get_by_role("link", name="Admin")).to_have_count(0)
    await user.get_by_label("Search apps").fill("termin")
    card = user.get_by_role("article", name="Terminal")
    await expect(card).to_be_visible()
    await expect(user.get_by_role("article", name="Web Browser")).to_have_count(0)
    await shot(user, site, "catalog")
    await card.get_by_role("button", name="Launch Terminal", exact=True).click()
    await user.wait_for_url(re.compile(r"/sessions/[0-9a-f]+$"))
    sid = user.url.rsplit("/", 1)[1]
    await state_is(user, "running")
    viewer = user.frame_locator('iframe[title="Session desktop"]')
    try:
        await viewer.locator("body[data-state=connected]").wait_for(timeout=SLOW)
    except Exception:
        await shot(user, site, "viewer-failed")
        body = viewer.locator("body")
        raise AssertionError(
            f"viewer never connected: state {await body.get_attribute('data-state')!r}, "
            f"{(await body.inner_text())[:300]!r}"
        ) from None
    canvas = viewer.locator("#screen canvas")

    async def drawn() -> bool:  # the first framebuffer update has been painted
        distinct = await canvas.evaluate(DISTINCT_COLOURS)
        return bool(distinct > 2)

    await eventually(drawn, timeout=30, interval=0.5, what="the remote desktop drawn")
    await shot(user, site, "viewer")
    await assert_csp_kept(user)  # the session page and the viewer in its frame
    view = await c.call(site.url, "GET", f"/sessions/{sid}/view", {})
    assert "frame-ancestors 'self'" in view.headers["content-security-policy"]

    # -- hibernate and resume from the session page, terminate from My sessions
    await user.get_by_role("button", name="Hibernate").click()
    await state_is(user, "hibernated")
    await expect(user.get_by_text("This session is hibernated")).to_be_visible()
    await user.get_by_role("button", name="Resume").click()
    await state_is(user, "running")
    await user.get_by_role("link", name="My sessions").click()
    mine = user.locator(f'tr[data-session-id="{sid}"]')
    await expect(mine).to_contain_text("running")
    await shot(user, site, "my-sessions")
    await user.get_by_role("button", name=f"Terminate terminal session {sid}", exact=True).click()
    await user.get_by_role("dialog").get_by_role("button", name="Terminate session").click()
    await expect(mine).to_have_count(0, timeout=60_000)  # ended sessions are hidden by default
    assert await c.session_state(c.replicas[0].url, sid, admin_api) in ("terminating", "terminated")

    # -- what a user may not see
    await user.goto(f"{site.url}/admin/agents")
    await expect(user.get_by_role("heading", name="Admins only")).to_be_visible()
    await expect(user.locator(f'tr[data-agent-id="{site.agent_id}"]')).to_have_count(0)
    await user.goto(f"{site.url}/sessions/{admins_session}")
    await expect(user.get_by_role("heading", name="Session not found")).to_be_visible()
    status = await user.evaluate(
        """async sid => (await fetch('/api/v1/sessions/' + sid, {headers:
              {Authorization: 'Bearer ' + localStorage.getItem('streamspace_token')}})).status""",
        admins_session,
    )
    assert status == 404
    await assert_csp_kept(user)

    # -- the API docs: Swagger UI from the control plane's own files, under the same policy
    docs = await admin.goto(f"{site.url}/api/docs")
    assert "script-src 'self';" in docs.headers["content-security-policy"]
    await expect(
        admin.get_by_role("heading", name=re.compile("StreamSpace control plane"))
    ).to_be_visible()
    await expect(admin.get_by_text("/api/v1/sessions").first).to_be_visible()
    await shot(admin, site, "api-docs")
    await assert_csp_kept(admin)
