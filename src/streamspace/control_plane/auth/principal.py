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
    # runs the platform (agents, replicas, orgs) on top of administering their own org
    platform_admin: bool = False
    # a personal API token's scope ("read" or "full"); "" for a login (auth/api_tokens.py)
    scope: str = ""

    @property
    def is_admin(self) -> bool:
        """Administers their org: its users, templates and sessions."""
        return self.role == "admin"

    @property
    def is_platform_admin(self) -> bool:
        return self.is_admin and self.platform_admin

    @property
    def is_api_token(self) -> bool:
        """Calling with a personal API token rather than a login."""
        return bool(self.scope)
