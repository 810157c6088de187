"""Single sign-on in headless Chromium: two replicas and Redis behind haproxy, a real
OpenID Connect provider (oidc-provider). A person clicks "Sign in with Test IdP", signs in and
consents on the provider's own pages, and lands in the product as the user created for them,
an admin by their group. Logging out ends the login on every replica and goes on to the
provider's end-session page, which returns to the product's login page. The provider then
rotates its signing key; the next sign-in works on the same running replicas."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import ARTIFACTS, chromium
from tests.support.cluster import Cluster, cluster
from tests.support.docker import unavailable
from tests.support.oidc_provider import OidcProvider

pytestmark = [pytest.mark.postgres]

UI_DIST = Path(__file__).resolve().parents[2] / "ui" / "dist"
ACCOUNTS = {
    "olga": {"preferred_username": "olga", "name": "Olga", "groups": ["streamspace-admins"]}
}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[tuple[Cluster, OidcProvider]]:
    if not (UI_DIST / "index.html").is_file():
        unavailable("the UI is not built (make setup builds ui/dist)")
    provider = OidcProvider(log_dir=tmp_path, app_urls=[], accounts=ACCOUNTS)
    env = {"STREAMSPACE_UI_DIR": str(UI_DIST), **provider.env()}
    async with cluster(tmp_path, replicas=2, redis=True, lb=True, extra_env=env) as c:
        assert c.lb is not None
        provider.app_urls = [c.lb.url]
        provider.start()
        try:
            yield c, provider
        finally:
            provider.stop()


async def sign_in_through_provider(page: Any, url: str) -> None:
    await page.goto(f"{url}/")
    await page.wait_for_url(re.compile(r"/login"))
    await page.get_by_role("link", name="Sign in with Test IdP").wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / "sso-login.png"))
    await page.get_by_role("link", name="Sign in with Test IdP").click()
    await page.get_by_role("button", name="Sign-in").wait_for()  # the provider's own page
    await page.locator("input[name=login]").fill("olga")
    await page.locator("input[name=password]").fill("olga's password")
    await page.get_by_role("button", name="Sign-in").click()
    await page.get_by_role("button", name="Continue").click()  # consent
    await page.get_by_role("link", name="Catalog").wait_for()


async def test_sign_in_with_the_identity_provider_and_out_again(
    site: tuple[Cluster, OidcProvider],
) -> None:
    c, provider = site
    assert c.lb is not None
    url = c.lb.url
    async with chromium() as browser:
        page = await (await browser.new_context(viewport={"width": 1366, "height": 800})).new_page()
        await sign_in_through_provider(page, url)
        assert page.url.startswith(url)
        await page.get_by_role("link", name="Admin").wait_for()  # admin by their group
        await page.get_by_text("olga").first.wait_for()
        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "sso-signed-in.png"))
        token = await page.evaluate("localStorage.getItem('streamspace_token')")
        assert token and token not in page.url

        # out of the product on every replica, then on to the provider's end-session page
        await page.get_by_role("button", name="Log out").click()
        await page.wait_for_url(re.compile(re.escape(provider.issuer) + r"/session/end"))
        await page.get_by_role("button", name="Yes, sign me out").click()
        await page.wait_for_url(re.compile(re.escape(url) + r"/login"))
        async with httpx.AsyncClient() as http:
            for replica in c.replicas:
                me = await http.get(
                    f"{replica.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}
                )
                assert me.status_code == 401, (replica.pod, me.text)

        # the provider rotates its signing key; the running replicas follow
        provider.restart(key_id="key-2")
        await sign_in_through_provider(page, url)
        await page.get_by_role("link", name="Admin").wait_for()
