"""Login and stream tokens (HS256 JWTs). Each token names its purpose (`typ`) so a stream
token can never call the REST API and a login token can never open a stream."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt

from streamspace.control_plane.auth.principal import Principal
from streamspace.errors import Unauthenticated

_ALGORITHM = "HS256"


@dataclass(frozen=True, kw_only=True)
class TokenClaims:
    subject: str
    token_id: str
    purpose: str
    expires_at: float
    extra: dict[str, Any]


class TokenCodec:
    """Issues and checks tokens with the cluster-wide secret."""

    def __init__(self, *, secret: str, cache_size: int = 10_000) -> None:
        self._secret = secret
        # Verified tokens: a client sends the same token on every request, and checking the
        # signature again costs more than the rest of the auth path. Expiry and purpose are
        # still checked on every use; the signature of a given string cannot change.
        self._verified: dict[str, TokenClaims] = {}
        self._cache_size = cache_size

    def issue(
        self, *, subject: str, purpose: str, ttl: float, token_id: str | None = None, **extra: Any
    ) -> tuple[str, TokenClaims]:
        now = time.time()
        claims = TokenClaims(
            subject=subject,
            token_id=token_id or secrets.token_hex(16),
            purpose=purpose,
            expires_at=now + ttl,
            extra=extra,
        )
        payload = {
            "sub": subject,
            "jti": claims.token_id,
            "typ": purpose,
            "iat": int(now),
            "exp": int(claims.expires_at),
            **extra,
        }
        return jwt.encode(payload, self._secret, algorithm=_ALGORITHM), claims

    def decode(self, token: str, *, purpose: str) -> TokenClaims:
        """Verify signature, expiry and purpose; raise Unauthenticated with a clear reason."""
        cached = self._verified.get(token)
        if cached is not None:
            if time.time() >= cached.expires_at:
                del self._verified[token]
                raise Unauthenticated("token expired", code="token_expired")
            if cached.purpose != purpose:
                raise Unauthenticated("token not valid for this use", code="invalid_token")
            return cached
        claims = self._verify(token, purpose=purpose)
        if len(self._verified) >= self._cache_size:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _verify(self, token: str, *, purpose: str) -> TokenClaims:
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                options={"require": ["sub", "jti", "exp", "typ"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired", code="token_expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid token", code="invalid_token") from exc
        if payload.get("typ") != purpose:
            raise Unauthenticated("token not valid for this use", code="invalid_token")
        extra = {k: v for k, v in payload.items() if k not in {"sub", "jti", "typ", "iat", "exp"}}
        return TokenClaims(
            subject=str(payload["sub"]),
            token_id=str(payload["jti"]),
            purpose=purpose,
            expires_at=float(payload["exp"]),
            extra=extra,
        )


def session_token(
    codec: TokenCodec, *, principal: Principal, session_id: str, purpose: str, ttl: float
) -> str:
    """A token for one session's stream (`stream`) or a replica-to-replica relay (`peer`),
    bound to the login it was issued under (`lid`): it stops working when that login ends."""
    token, _ = codec.issue(
        subject=principal.user_id,
        purpose=purpose,
        ttl=ttl,
        sid=session_id,
        lid=principal.token_id,
        org=principal.org_id,
        usr=principal.username,
        role=principal.role,
    )
    return token


def session_principal(codec: TokenCodec, token: str, *, session_id: str, purpose: str) -> Principal:
    """Who a session token speaks for; refuses tokens of another purpose or session."""
    claims = codec.decode(token, purpose=purpose)
    if claims.extra.get("sid") != session_id:
        raise Unauthenticated("token is for another session", code="token_wrong_session")
    return Principal(
        user_id=claims.subject,
        org_id=str(claims.extra.get("org", "")),
        username=str(claims.extra.get("usr", "")),
        role=str(claims.extra.get("role", "user")),
        token_id=str(claims.extra.get("lid", "")),
    )


EVENTS_TICKET = "events"  # the purpose of the events socket's ticket


def ticket(codec: TokenCodec, *, principal: Principal, purpose: str, ttl: float) -> str:
    """A short-lived, single-purpose ticket (the events socket's) standing for a login, so
    the 12-hour login token never travels in a URL, where proxies and access logs keep it."""
    token, _ = codec.issue(
        subject=principal.user_id, purpose=purpose, ttl=ttl, lid=principal.token_id
    )
    return token


def ticket_login(codec: TokenCodec, token: str, *, purpose: str) -> str:
    """The login a ticket stands for ("" when bound to none, which checking it refuses)."""
    login_id = codec.decode(token, purpose=purpose).extra.get("lid")
    return login_id if isinstance(login_id, str) else ""
