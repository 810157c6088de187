"""The TOTP second factor through the real UI in headless Chromium: a user sets it up on the
Account page (the QR code renders under the page's CSP, recovery codes are shown once), then
signs in again with a code from pyotp; and a challenge from one replica is finished on another
(two replicas on one PostgreSQL, no Redis)."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from tests.e2e.test_ui import UI_DIST, assert_csp_kept, new_page
from tests.support.browser import chromium
from tests.support.cluster import cluster
from tests.support.docker import unavailable

pytestmark = [pytest.mark.postgres, pytest.mark.browser]

USER, PASSWORD = "mira", "mira-pass-123"
STEP = 30


async def password_step(page: Any, url: str) -> None:
    await page.goto(f"{url}/")
    await page.wait_for_url(re.compile(r"/login"))
    await page.get_by_label("Username").fill(USER)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()


def code(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).at(step * STEP)


async def test_enrol_on_the_account_page_then_sign_in_with_a_code(tmp_path: Path) -> None:
    if not (UI_DIST / "index.html").is_file():
        unavailable("the UI is not built (make setup builds ui/dist)")
    env = {"STREAMSPACE_UI_DIR": str(UI_DIST)}
    async with (
        cluster(tmp_path, replicas=2, redis=False, lb=False, extra_env=env) as c,
        chromium() as browser,
    ):
        url, other = c.replicas[0].url, c.replicas[1].url
        admin = await c.token(url)
        made = await c.call(
            url, "POST", "/api/v1/users", admin, json={"username": USER, "password": PASSWORD}
        )
        assert made.status_code == 201, made.text

        page = await new_page(browser)
        await password_step(page, url)
        await page.get_by_role("link", name="Catalog").wait_for()
        await page.goto(f"{url}/account")
        await page.get_by_role("button", name="Set up two-factor authentication").click()
        qr = page.get_by_role("img", name="QR code for your authenticator app")
        await qr.wait_for()
        assert await qr.evaluate("img => img.complete && img.naturalWidth > 0")
        secret = (await page.get_by_test_id("mfa-secret").inner_text()).strip()
        enrolled_at = int(time.time() // STEP)
        await page.get_by_label("Code from the app").fill(code(secret, enrolled_at))
        await page.get_by_role("button", name="Turn on").click()
        codes = (await page.get_by_test_id("recovery-codes").inner_text()).split()
        assert len(codes) == 10
        await page.get_by_role("button", name="I have saved them").click()
        await page.get_by_text("10 recovery codes left.").wait_for()
        await assert_csp_kept(page)
        await page.get_by_role("button", name="Log out").click()

        # signing in again: the password, then the next step's code (the enrolment's is spent)
        await password_step(page, url)
        now = max(enrolled_at + 1, int(time.time() // STEP))
        await page.get_by_label("Authentication code").fill(code(secret, now))
        await page.get_by_role("button", name="Verify").click()
        await page.get_by_role("link", name="Catalog").wait_for()
        await assert_csp_kept(page)

        # a challenge from one replica, finished on the other with a recovery code
        async with httpx.AsyncClient(timeout=15) as http:
            first = await http.post(
                f"{url}/api/v1/auth/login", json={"username": USER, "password": PASSWORD}
            )
            assert first.status_code == 401 and first.json()["error"]["code"] == "mfa_required"
            body: dict[str, Any] = {"challenge": first.json()["mfa"]["challenge"]}
            done = await http.post(
                f"{other}/api/v1/auth/login/mfa", json=body | {"recovery_code": codes[0]}
            )
            assert done.status_code == 200, done.text
            again = await http.post(
                f"{url}/api/v1/auth/login/mfa", json=body | {"recovery_code": codes[1]}
            )
            assert again.json()["error"]["code"] == "mfa_challenge_spent"
