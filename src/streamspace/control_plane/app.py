"""create_app(settings): the control plane's ASGI app. The lifespan builds the engine, runs
migrations, the hub, the stores and the background loops, and tears them down."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import redis.asyncio as aioredis
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from streamspace import __version__
from streamspace.agent_hub.base import HubBackend
from streamspace.agent_hub.discovery import RedisTarget, pooled_client
from streamspace.agent_hub.memory import MemoryHubBackend
from streamspace.agent_hub.redis import RedisHubBackend
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.api import (
    agents,
    audit,
    auth,
    health,
    mfa,
    orgs,
    overview,
    quotas,
    sessions,
    sso,
    stream,
    templates,
    tickets,
    tokens,
    users,
    webhooks,
)
from streamspace.control_plane.api.deps import credential_ended
from streamspace.control_plane.api.errors import install_error_handlers
from streamspace.control_plane.asgi.headers import SecurityHeadersMiddleware
from streamspace.control_plane.asgi.middleware import RequestMiddleware
from streamspace.control_plane.auth.api_tokens import ApiTokenStore
from streamspace.control_plane.auth.ldap import LdapConfig, LdapDirectory
from streamspace.control_plane.auth.login_store import (
    CachingLoginSessionStore,
    DatabaseLoginSessionStore,
    LoginSessionStore,
    RedisLoginSessionStore,
)
from streamspace.control_plane.auth.oidc import OidcRelyingParty
from streamspace.control_plane.auth.throttle import (
    LoginThrottle,
    MemoryLoginThrottle,
    RedisLoginThrottle,
)
from streamspace.control_plane.auth.tokens import TokenCodec
from streamspace.control_plane.auth.totp import SecretCipher
from streamspace.control_plane.background.reaper import IdleReaper
from streamspace.control_plane.background.sweeper import Sweeper
from streamspace.control_plane.background.webhooks import WebhookSender
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.db import migrate
from streamspace.control_plane.db.engine import create_engine, reads, session_factory
from streamspace.control_plane.db.files import secure_data_dir
from streamspace.control_plane.db.records import INSTALLATION_KEY, SystemSettingRecord
from streamspace.control_plane.hub.events import EventHub
from streamspace.control_plane.hub.hub import AgentHub
from streamspace.control_plane.metrics import Metrics
from streamspace.control_plane.services import templates as template_service
from streamspace.control_plane.services import users as user_service
from streamspace.control_plane.services.agents import AgentService
from streamspace.control_plane.services.quotas import QuotaPolicy
from streamspace.control_plane.services.sessions import SessionService
from streamspace.control_plane.streaming.activity import ActivityTracker
from streamspace.control_plane.web.api_docs import mount_api_docs
from streamspace.control_plane.web.spa import mount_ui
from streamspace.control_plane.web.viewer_page import mount_viewer
from streamspace.control_plane.ws import agent_gateway, events, vnc

log = logging.getLogger(__name__)
GC_YOUNG_THRESHOLD = 20_000  # allocations between young collections (CPython default: 700)


async def cluster_secret(
    db: async_sessionmaker[AsyncSession], *, key: str, generate: Callable[[], str] | None = None
) -> str:
    """A value shared by every replica (a secret, by default): generated once, kept in the
    database."""
    async with db.begin() as s:
        row = await s.get(SystemSettingRecord, key)
        if row is None:
            value = generate() if generate is not None else secrets.token_urlsafe(48)
            row = SystemSettingRecord(key=key, value=value)
            s.add(row)
    async with db() as s:  # re-read: another replica may have won the insert race
        stored = await s.get(SystemSettingRecord, key)
        return stored.value if stored else row.value


async def installation_id(db: async_sessionmaker[AsyncSession]) -> str:
    """This installation's id, generated once per database: every Docker and Kubernetes object
    its agents create carries it, so two installations on one engine never touch each other's.
    Lowercase hex, so a short prefix fits Docker names and Kubernetes label values."""
    return await cluster_secret(db, key=INSTALLATION_KEY, generate=lambda: secrets.token_hex(16))


async def migrate_with_retry(engine: AsyncEngine) -> None:
    for attempt in range(5):
        try:
            await migrate.upgrade(engine)
            return
        except Exception:
            if attempt == 4:
                raise
            log.warning("database migration failed (attempt %d); retrying", attempt + 1)
            await asyncio.sleep(1 + attempt)


def redis_target(settings: ControlPlaneSettings, db: int) -> RedisTarget:
    """Redis database `db`: at REDIS_HOST:REDIS_PORT, or wherever REDIS_SENTINEL_HOSTS say the
    master is."""
    return RedisTarget(
        url=settings.redis_url(db),
        sentinels=settings.redis_sentinels,
        master=settings.redis_sentinel_master,
        sentinel_password=settings.redis_sentinel_password,
    )


def redis_client(settings: ControlPlaneSettings, db: int) -> aioredis.Redis:
    """REDIS_POOL_SIZE connections, waited for when all are busy: with redis-py's default pool
    the login check took "Too many connections" for an outage, and every authenticated request
    past the tenth concurrent one fell back to a database read."""
    return pooled_client(redis_target(settings, db), max_connections=settings.redis_pool_size)


async def auth_stores(
    settings: ControlPlaneSettings,
    db: async_sessionmaker[AsyncSession],
    read_db: async_sessionmaker[AsyncSession],
) -> tuple[LoginSessionStore, LoginThrottle, aioredis.Redis | None]:
    window, limit = settings.login_failure_window, settings.login_max_failures
    database = DatabaseLoginSessionStore(sessions=db, reads=read_db)
    if not settings.redis_enabled:
        return (
            CachingLoginSessionStore(database=database),
            MemoryLoginThrottle(max_failures=limit, window=window),
            None,
        )
    client = redis_client(settings, 0)
    try:
        await client.ping()
        log.info("Redis cache enabled and connected")
    except Exception as exc:
        log.warning("Redis cache enabled but not reachable yet (%s); logins fail until it is", exc)
    return (
        RedisLoginSessionStore(client=client, database=database),
        RedisLoginThrottle(client=client, max_failures=limit, window=window),
        client,
    )


def _hub_backend(settings: ControlPlaneSettings) -> HubBackend:
    if settings.agenthub_redis_enabled:
        return RedisHubBackend(
            target=redis_target(settings, 1),
            pool_size=settings.redis_pool_size,
            lean=settings.lean_redis_client,
        )
    return MemoryHubBackend()


async def build_context(settings: ControlPlaneSettings, *, metrics: Metrics) -> AppContext:
    secure_data_dir(settings.data_dir, create=False)
    engine = create_engine(settings)
    await migrate_with_retry(engine)
    db = session_factory(engine)
    read_engine = reads(engine)
    read_db = session_factory(read_engine)
    secret = settings.jwt_secret or await cluster_secret(db, key="jwt_secret")
    installation = await installation_id(db)
    login_store, throttle, cache = await auth_stores(settings, db, read_db)
    backend = _hub_backend(settings)
    event_hub = EventHub(bus=backend)
    hub = AgentHub(
        registry=backend,
        bus=backend,
        addresses=backend,
        db=db,
        settings=settings,
        metrics=metrics,
        on_event=event_hub.on_message,
        events=event_hub,
    )
    liveness = settings.heartbeat_interval * settings.heartbeat_missed_limit
    session_service = SessionService(
        sessions=db,
        reads=read_db,
        router=hub,
        events=event_hub,
        agent_liveness=liveness,
        quota=QuotaPolicy.from_settings(settings),
    )
    agent_service = AgentService(
        sessions=db,
        bootstrap_key=settings.agent_bootstrap_key,
        announce=session_service.announce,
        events=event_hub,
        revoker=hub,
    )
    return AppContext(
        settings=settings,
        installation_id=installation,
        engine=engine,
        reads=read_engine,
        db=db,
        tokens=TokenCodec(secret=secret),
        login_store=login_store,
        throttle=throttle,
        metrics=metrics,
        hub=hub,
        hub_backend=backend,
        events=event_hub,
        session_service=session_service,
        agent_service=agent_service,
        activity=ActivityTracker(db=db, interval=settings.activity_flush_interval),
        cache_redis=cache,
        api_tokens=ApiTokenStore(sessions=db, reads=read_db),
        oidc=OidcRelyingParty.from_settings(settings),
        ldap=_ldap_directory(settings),
        mfa_cipher=await _mfa_cipher(settings, db),
    )


def _ldap_directory(settings: ControlPlaneSettings) -> LdapDirectory | None:
    config = LdapConfig.from_settings(settings)
    return LdapDirectory(config) if config else None


async def _mfa_cipher(
    settings: ControlPlaneSettings, db: async_sessionmaker[AsyncSession]
) -> SecretCipher:
    """STREAMSPACE_MFA_KEY, or a key kept in the database (docs/identity.md says what each
    protects against)."""
    key = settings.mfa_key.get_secret_value() if settings.mfa_key else None
    return SecretCipher(key=key or await cluster_secret(db, key="mfa_key"))


async def bootstrap_data(ctx: AppContext) -> None:
    """First start: the admin user and the seed catalog."""
    s = ctx.settings
    if s.admin_password and await user_service.ensure_admin(
        ctx.db, username=s.admin_username, password=s.admin_password
    ):
        log.info("created admin user %r", s.admin_username)
    async with ctx.db.begin() as db:
        org = await user_service.default_org(db)
    if await template_service.seed_templates(ctx.db, org_id=org.id):
        log.info("seeded the template catalog")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ControlPlaneSettings = app.state.settings
    ctx = await build_context(settings, metrics=app.state.metrics)
    app.state.ctx = ctx
    await bootstrap_data(ctx)
    await ctx.hub.start()
    sweeper = Sweeper(
        db=ctx.db, hub=ctx.hub, settings=settings, metrics=ctx.metrics, sessions=ctx.session_service
    )
    tasks = [
        asyncio.create_task(sweeper.run(), name="sweeper"),
        asyncio.create_task(ctx.activity.run(), name="activity"),
        asyncio.create_task(
            ctx.events.recheck_logins(
                ended=functools.partial(credential_ended, ctx),
                interval=settings.heartbeat_interval,
            ),
            name="login-recheck",
        ),
        asyncio.create_task(
            IdleReaper(
                db=ctx.db, settings=settings, pod=settings.pod_name, sessions=ctx.session_service
            ).run(),
            name="reaper",
        ),
        asyncio.create_task(
            WebhookSender(
                db=ctx.db, settings=settings, metrics=ctx.metrics, pod=settings.pod_name
            ).run(),
            name="webhooks",
        ),
    ]
    log.info(
        "control plane %s ready (installation %s, pod %s, database %s, hub %s)",
        __version__,
        ctx.installation_id,
        settings.pod_name,
        ctx.engine.dialect.name,
        ctx.hub_backend.name,
    )
    # Everything built so far lives as long as the process: move it out of the collector's
    # sight, and collect the young generation less often, so full collections stay short and
    # rare instead of showing up as latency spikes (the long tail of the API bench).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    try:
        yield
    finally:
        ctx.metrics.shutting_down.set(1)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await ctx.hub.stop()
        await ctx.hub_backend.close()
        await ctx.login_store.close()
        if ctx.oidc is not None:
            await ctx.oidc.close()
        if ctx.cache_redis is not None:
            await ctx.cache_redis.aclose()
        await ctx.engine.dispose()


def create_app(settings: ControlPlaneSettings) -> FastAPI:
    app = FastAPI(
        title="StreamSpace control plane",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,  # web/api_docs.py: Swagger UI from the package, not a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for module in (
        health,
        auth,
        users,
        orgs,
        templates,
        sessions,
        stream,
        tickets,
        agents,
        overview,
        tokens,
        audit,
        quotas,
        webhooks,
        sso,
        mfa,
    ):
        app.include_router(module.router)
    app.include_router(agent_gateway.router)
    app.include_router(events.router)
    app.include_router(vnc.router)
    mount_viewer(app)
    mount_api_docs(app)
    app.state.metrics = Metrics()
    app.add_middleware(
        RequestMiddleware,
        latency=app.state.metrics.http_latency,
        max_body=settings.max_body_bytes,
    )
    # the 413 and 400 answers of RequestMiddleware carry the headers too
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.hsts)
    if settings.trusted_proxy_networks:
        # Outermost, so everything inside sees the client (and the scheme, for HSTS), not the
        # proxy. uvicorn's own proxy_headers is off (server.py): it would trust 127.0.0.1
        # whatever TRUSTED_PROXIES says.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_networks)
    if settings.ui_dir:
        mount_ui(app, Path(settings.ui_dir))
    return app
