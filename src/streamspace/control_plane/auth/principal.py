"""Who is calling: the authenticated user, as every service sees it."""

from __future__ import annotations

from dataclasses import dataclass


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
