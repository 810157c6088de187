"""A real OpenID Connect provider for the SSO tests: oidc-provider (tests/support/oidc, installed
with `npm ci` on first use) under node on a loopback port, with its own login and consent pages.
`restart(key_id=...)` brings it back on the same port with a new signing key (a rotation), and
`sign_in` walks its pages over HTTP the way a browser would."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from tests.support.docker import unavailable
from tests.support.processes import Proc, free_port, wait_until

HERE = Path(__file__).resolve().parent / "oidc"
CLIENT_ID = "streamspace"
CLIENT_SECRET = "streamspace-client-secret-for-tests"


def install() -> None:
    """node_modules from the lockfile, once per checkout (CI starts on a clean machine)."""
    if (HERE / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        unavailable("node and npm are not installed (scripts/test-services.sh installs them)")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, check=True)


@dataclass
class OidcProvider:
    log_dir: Path
    app_urls: list[str]  # where StreamSpace runs: its callback and /login are registered
    accounts: dict[str, dict[str, Any]]
    port: int = field(default_factory=free_port)
    proc: Proc | None = None
    key_id: str = "key-1"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, key_id: str | None = None) -> OidcProvider:
        install()
        self.key_id = key_id or self.key_id
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "keyId": self.key_id,
            "client": {
                "id": CLIENT_ID,
                "secret": CLIENT_SECRET,
                "redirectUris": [f"{u}/api/v1/auth/oidc/callback" for u in self.app_urls],
                "postLogoutRedirectUris": [f"{u}/login" for u in self.app_urls],
            },
            "accounts": self.accounts,
        }
        node = shutil.which("node") or "node"
        self.proc = Proc(
            name=f"oidc-provider-{self.key_id}",
            args=[node, str(HERE / "provider.mjs"), json.dumps(config)],
            env={},
            log_dir=self.log_dir,
        )
        self.proc.start()
        wait_until(self._ready, timeout=30, what="oidc-provider's discovery document")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if not self.proc.alive:
            raise RuntimeError(f"oidc-provider exited:\n{self.proc.log()[-3000:]}")
        try:
            return httpx.get(f"{self.issuer}/.well-known/openid-configuration").status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def restart(self, *, key_id: str) -> None:
        """The same provider with a new signing key: the old key is gone from its JWKS."""
        self.stop()
        self.start(key_id=key_id)

    def settings(self, **extra: Any) -> dict[str, Any]:
        """The control plane's settings for this provider."""
        return {
            "oidc_issuer": self.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "oidc_display_name": "Test IdP",
            "oidc_admin_groups": "streamspace-admins",
            "oidc_jwks_min_refresh": 0,
            **extra,
        }

    def env(self) -> dict[str, str]:
        return {k.upper(): str(v) for k, v in self.settings().items()}


def _form(html: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the page's first form."""
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action, html[:2000]
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    return unescape(action.group(1)), hidden


async def sign_in_at_provider(authorize_url: str, *, login: str) -> str:
    """Walk the provider's login and consent pages from the authorization URL; the URL it
    finally sends the browser to (StreamSpace's callback with code and state)."""
    async with httpx.AsyncClient(follow_redirects=False) as browser:
        url, method, data = authorize_url, "GET", None
        for _ in range(12):
            response = await browser.request(method, url, data=data)
            if response.is_redirect:
                url, method, data = urljoin(url, response.headers["location"]), "GET", None
                if "/api/v1/auth/oidc/callback" in url:
                    return url
                continue
            assert response.status_code == 200, response.text[:2000]
            action, fields = _form(response.text)
            if fields.get("prompt") == "login":
                fields |= {"login": login, "password": "any-password"}
            url, method, data = urljoin(url, action), "POST", fields
        raise AssertionError("the provider never sent the browser back")
