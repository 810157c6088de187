"""Who is calling: the authenticated user, as every service sees it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class Principal:
    user_id: str
    org_id: str
    username: str
    role: str
    token_id: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(kw_only=True)
class PrincipalCache:
    """A login token's principal for `ttl` seconds, so a burst of requests reads the user row
    once. Safe because the token's session is still checked on every request, and disabling a
    user or changing a role ends their sessions."""

    ttl: float = 1.0
    limit: int = 10_000
    _entries: dict[str, tuple[float, Principal]] = field(default_factory=dict)

    def find(self, token_id: str) -> Principal | None:
        entry = self._entries.get(token_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def keep(self, principal: Principal) -> None:
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[principal.token_id] = (time.monotonic() + self.ttl, principal)
