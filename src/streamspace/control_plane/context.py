"""Everything a request handler needs, built once by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from streamspace.agent_hub.base import HubBackend
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.auth.api_tokens import ApiTokenStore
from streamspace.control_plane.auth.ldap import LdapDirectory
from streamspace.control_plane.auth.login_store import LoginSessionStore
from streamspace.control_plane.auth.oidc import OidcRelyingParty
from streamspace.control_plane.auth.passwords import PasswordVerifier, verify_password
from streamspace.control_plane.auth.throttle import LoginThrottle
from streamspace.control_plane.auth.tokens import TokenCodec
from streamspace.control_plane.auth.totp import SecretCipher
from streamspace.control_plane.metrics import Metrics
from streamspace.control_plane.streaming.activity import ActivityTracker

if TYPE_CHECKING:
    from streamspace.control_plane.hub.events import EventHub
    from streamspace.control_plane.hub.hub import AgentHub
    from streamspace.control_plane.services.agents import AgentService
    from streamspace.control_plane.services.sessions import SessionService


@dataclass(kw_only=True)
class AppContext:
    settings: ControlPlaneSettings
    installation_id: str  # generated once per database (app.installation_id)
    engine: AsyncEngine
    reads: AsyncEngine  # single-statement reads (engine.reads)
    db: async_sessionmaker[AsyncSession]
    tokens: TokenCodec
    login_store: LoginSessionStore
    throttle: LoginThrottle
    metrics: Metrics
    hub: AgentHub
    hub_backend: HubBackend  # the store behind the hub's registry, bus and replica addresses
    events: EventHub
    session_service: SessionService
    agent_service: AgentService
    activity: ActivityTracker
    api_tokens: ApiTokenStore
    cache_redis: aioredis.Redis | None = None
    oidc: OidcRelyingParty | None = None  # OIDC_ISSUER set (docs/identity.md)
    ldap: LdapDirectory | None = None  # LDAP_URL set
    verify_password: PasswordVerifier = verify_password  # tests wrap it to count verifications
    mfa_cipher: SecretCipher  # TOTP secrets at rest (auth/totp.py)

    @property
    def agent_liveness(self) -> float:
        return self.settings.heartbeat_interval * self.settings.heartbeat_missed_limit
