"""Argon2id password hashing, run off the event loop so logins never stall other requests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP's minimum argon2id profile (19 MiB, t=2): strong, and cheap enough for 200 logins/s.
_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified when the username is unknown, so timing does not reveal which usernames exist.
_DUMMY_HASH = _HASHER.hash("streamspace-timing-equaliser")


# How a login checks a password: `verify_password` below, or in tests a counting double of it.
PasswordVerifier = Callable[[str | None, str], Awaitable[bool]]


def hash_password_sync(password: str) -> str:
    return _HASHER.hash(password)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; always does the work of one verification."""
    return await asyncio.to_thread(_verify, stored, password)
