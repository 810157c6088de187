"""OpenID Connect relying party: discovery, the authorization request (code flow with PKCE),
the code exchange, ID token checks against the provider's keys (a key id not yet seen makes
the key set be fetched again, so a rotation is followed without restart), userinfo, and the
RP-initiated logout URL. Knows nothing of users or HTTP routes (services/identities, api/sso).
Token checks are joserfc's (Authlib's JOSE library)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from streamspace.config import ControlPlaneSettings
from streamspace.errors import Unauthenticated, Unavailable

log = logging.getLogger(__name__)
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]


@dataclass(frozen=True, kw_only=True)
class AuthorizationRequest:
    """What the callback must find again: sent to the provider (`url`) and kept by us."""

    url: str
    state: str
    nonce: str
    verifier: str


@dataclass(frozen=True, kw_only=True)
class SignIn:
    """The provider's word on who signed in: the ID token's claims merged with userinfo's."""

    claims: dict[str, Any]
    id_token: str


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _failed(message: str, code: str = "sso_failed") -> Unauthenticated:
    return Unauthenticated(message, code=code)


class OidcRelyingParty:
    """One configured provider. Discovery and keys are fetched on first use and cached."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str | None,
        scopes: str,
        clock_skew: float,
        jwks_min_refresh: float,
        timeout: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        scope_list = scopes.split()
        self.scopes = " ".join(["openid", *[s for s in scope_list if s != "openid"]])
        self._skew = int(clock_skew)
        self._min_refresh = jwks_min_refresh
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._clock = clock
        self._monotonic = monotonic
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._keys_fetched = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> OidcRelyingParty | None:
        if not settings.oidc_issuer:
            return None
        secret = settings.oidc_client_secret
        return cls(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=secret.get_secret_value() if secret else None,
            scopes=settings.oidc_scopes,
            clock_skew=settings.oidc_clock_skew,
            jwks_min_refresh=settings.oidc_jwks_min_refresh,
            timeout=settings.oidc_timeout,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _get_json(self, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._http.get(url, **kwargs)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"the identity provider did not answer {url}: {exc}") from exc
        if not isinstance(body, dict):
            raise Unavailable(f"the identity provider answered {url} with no JSON object")
        return body

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            doc = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
                raise Unavailable(
                    f"the provider's discovery document names issuer {doc.get('issuer')!r},"
                    f" not OIDC_ISSUER {self.issuer!r}"
                )
            self._metadata = doc
        return self._metadata

    async def authorization_request(self, *, redirect_uri: str) -> AuthorizationRequest:
        meta = await self.metadata()
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        verifier = secrets.token_urlsafe(48)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": self.scopes,
                "state": state,
                "nonce": nonce,
                "code_challenge": pkce_challenge(verifier),
                "code_challenge_method": "S256",
            }
        )
        url = f"{meta['authorization_endpoint']}?{query}"
        return AuthorizationRequest(url=url, state=state, nonce=nonce, verifier=verifier)

    async def finish(self, *, code: str, redirect_uri: str, verifier: str, nonce: str) -> SignIn:
        """Exchange the code (with the PKCE verifier), check the ID token, read userinfo."""
        tokens = await self._exchange(code=code, redirect_uri=redirect_uri, verifier=verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise _failed("the identity provider returned no ID token")
        claims = await self.verify_id_token(id_token, nonce=nonce)
        access_token = tokens.get("access_token")
        meta = await self.metadata()
        if isinstance(access_token, str) and meta.get("userinfo_endpoint"):
            info = await self._get_json(
                meta["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}
            )
            if info.get("sub") != claims["sub"]:
                raise _failed("userinfo is about another subject than the ID token")
            claims = {**info, **claims}
        return SignIn(claims=claims, id_token=id_token)

    async def _exchange(self, *, code: str, redirect_uri: str, verifier: str) -> dict[str, Any]:
        meta = await self.metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        extra: dict[str, Any] = {}
        if self._secret is None:
            form["client_id"] = self.client_id
        else:
            extra["auth"] = httpx.BasicAuth(self.client_id, self._secret)
        try:
            response = await self._http.post(meta["token_endpoint"], data=form, **extra)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the identity provider's token endpoint failed: {exc}") from exc
        if response.status_code != 200:
            raise _failed(
                f"the identity provider refused the sign-in code ({response.status_code}:"
                f" {response.text[:200]})"
            )
        body = response.json()
        if not isinstance(body, dict):
            raise _failed("the identity provider's token response is not a JSON object")
        return body

    async def verify_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        token = await self._decode(id_token)
        claims = dict(token.claims)
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=self._skew,
            iss={"essential": True, "value": self.issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as exc:
            raise _failed("the ID token has expired (or the clocks differ)") from exc
        except JoseError as exc:
            raise _failed(f"the ID token is not valid: {exc}") from exc
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.client_id not in audiences:
            raise _failed("the ID token is for another client")
        if len(audiences) > 1 and claims.get("azp") != self.client_id:
            raise _failed("the ID token's authorized party is another client")
        if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise _failed("the ID token's nonce does not match this sign-in", code="sso_nonce")
        return claims

    async def _decode(self, id_token: str) -> jwt.Token:
        keys = await self._key_set(refresh=False)
        try:
            return jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            keys = await self._key_set(refresh=True)  # rotated at the provider?
        except JoseError as exc:
            raise _failed(f"the ID token's signature is not valid: {exc}") from exc
        try:
            return jwt.decode(id_token, keys, algorithms=ALGORITHMS)
        except InvalidKeyIdError as exc:
            raise _failed(
                "the ID token is signed with a key the provider does not publish"
            ) from exc
        except JoseError as exc:
            raise _failed(f"the ID token's signature is not valid: {exc}") from exc

    async def _key_set(self, *, refresh: bool) -> KeySet:
        """The provider's keys; fetched again when `refresh` (an unknown key id), but at most
        once per OIDC_JWKS_MIN_REFRESH so forged key ids cannot make us hammer the provider."""
        async with self._lock:
            recent = self._monotonic() - self._keys_fetched < self._min_refresh
            if self._keys is not None and (not refresh or recent):
                return self._keys
            meta = await self.metadata()
            doc = await self._get_json(meta["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise Unavailable(f"the provider's key set cannot be read: {exc}") from exc
            self._keys_fetched = self._monotonic()
            if refresh:
                log.info("fetched the identity provider's keys again (key rotation)")
            return self._keys

    async def logout_url(self, *, id_token: str, post_logout_redirect_uri: str) -> str | None:
        """Where the browser ends its provider session after ours (RP-initiated logout), or
        None when the provider offers no end_session_endpoint."""
        endpoint = (await self.metadata()).get("end_session_endpoint")
        if not endpoint:
            return None
        query = urlencode(
            {
                "id_token_hint": id_token,
                "client_id": self.client_id,
                "post_logout_redirect_uri": post_logout_redirect_uri,
            }
        )
        return f"{endpoint}?{query}"
