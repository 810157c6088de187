"""Token checks stay exact when verified tokens are remembered: expiry and purpose are checked
on every use, a forged or altered token is never taken from the cache."""

from __future__ import annotations

import time

import pytest

from streamspace.control_plane.auth.tokens import TokenCodec
from streamspace.errors import Unauthenticated


def test_a_remembered_token_still_expires_and_keeps_its_purpose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    codec = TokenCodec(secret="s" * 32)
    token, claims = codec.issue(subject="u1", purpose="login", ttl=60)
    assert codec.decode(token, purpose="login").token_id == claims.token_id
    assert codec.decode(token, purpose="login").token_id == claims.token_id  # from the cache
    with pytest.raises(Unauthenticated) as wrong:
        codec.decode(token, purpose="stream")
    assert wrong.value.code == "invalid_token"
    later = time.time() + 61
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthenticated) as expired:
        codec.decode(token, purpose="login")
    assert expired.value.code == "token_expired"


def test_altered_tokens_and_other_secrets_are_refused() -> None:
    codec = TokenCodec(secret="s" * 32)
    token, _ = codec.issue(subject="u1", purpose="login", ttl=60)
    codec.decode(token, purpose="login")
    head, body, signature = token.split(".")
    for forged in (f"{head}.{body}.{signature[:-2]}AA", f"{head}.{body}x.{signature}"):
        with pytest.raises(Unauthenticated):
            codec.decode(forged, purpose="login")
    with pytest.raises(Unauthenticated):
        TokenCodec(secret="t" * 32).decode(token, purpose="login")
