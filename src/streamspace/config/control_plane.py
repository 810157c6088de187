"""Control-plane settings: every environment variable `streamspace api` and `up` read.

Names from the user's scalability guide (POD_NAME, AGENTHUB_REDIS_ENABLED, REDIS_*, DB_*)
are accepted exactly as written. Loaded once by the CLI and passed down.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamspace.config.durations import Seconds, env
from streamspace.config.redis_urls import parse_host_port, split_list
from streamspace.errors import ConfigError


class ControlPlaneSettings(BaseSettings):
    """Settings of one control-plane replica."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    host: str = Field(
        "127.0.0.1",
        validation_alias=env("STREAMSPACE_HOST"),
        description="Address the HTTP server binds to.",
    )
    port: int = Field(
        8080,
        ge=1,
        le=65535,
        validation_alias=env("STREAMSPACE_PORT"),
        description="Port the HTTP server listens on.",
    )
    data_dir: Path = Field(
        Path("./data"),
        validation_alias=env("STREAMSPACE_DATA_DIR"),
        description="Directory for the embedded SQLite database and secrets.",
    )
    database_url: str | None = Field(
        None,
        validation_alias=env("DATABASE_URL"),
        description="SQLAlchemy URL: sqlite+aiosqlite:///path or postgresql+asyncpg://user:pw@host/db."
        " Default: a SQLite file in the data directory.",
    )
    pod_name: str = Field(
        default_factory=socket.gethostname,
        validation_alias=env("POD_NAME"),
        description="Name of this replica; used for pub/sub routing.",
    )
    internal_url: str | None = Field(
        None,
        validation_alias=env("STREAMSPACE_INTERNAL_URL"),
        description="URL other replicas use to reach this one (default http://<host>:<port>).",
    )
    agenthub_redis_enabled: bool = Field(
        False,
        validation_alias=env("AGENTHUB_REDIS_ENABLED"),
        description="Share the AgentHub through Redis DB 1 (multi-pod mode).",
    )
    cache_enabled: bool = Field(
        False,
        validation_alias=env("CACHE_ENABLED"),
        description="Keep login sessions and cache in Redis DB 0 (implied by AGENTHUB_REDIS_ENABLED).",
    )
    redis_host: str = Field(
        "localhost", validation_alias=env("REDIS_HOST"), description="Redis server address."
    )
    redis_port: int = Field(
        6379, ge=1, le=65535, validation_alias=env("REDIS_PORT"), description="Redis server port."
    )
    redis_password: str | None = Field(
        None, validation_alias=env("REDIS_PASSWORD"), description="Redis password, if any."
    )
    redis_sentinel_hosts: str = Field(
        "",
        validation_alias=env("REDIS_SENTINEL_HOSTS"),
        description="Comma-separated `host:port` list of Redis Sentinels. When set, every Redis"
        " connection asks them for the current master (REDIS_HOST and REDIS_PORT are then"
        " ignored) and follows a failover without restart. Empty: no Sentinel.",
    )
    redis_sentinel_master: str = Field(
        "mymaster",
        min_length=1,
        validation_alias=env("REDIS_SENTINEL_MASTER"),
        description="Name the Sentinels monitor the Redis master under.",
    )
    redis_sentinel_password: str | None = Field(
        None,
        validation_alias=env("REDIS_SENTINEL_PASSWORD"),
        description="Password of the Sentinels themselves, if any (REDIS_PASSWORD stays the"
        " data nodes' password).",
    )
    redis_pool_size: int = Field(
        10,
        ge=1,
        validation_alias=env("REDIS_POOL_SIZE"),
        description="Pooled Redis connections a replica opens at most per database (the login"
        " store's on DB 0, the AgentHub's on DB 1); a burst past it waits for a free one. The"
        " AgentHub holds two more of its own: its subscription and its pipelined lookups and"
        " publishes.",
    )
    db_max_open_conns: int = Field(
        25,
        ge=1,
        validation_alias=env("DB_MAX_OPEN_CONNS"),
        description="Maximum database connections per replica.",
    )
    db_max_idle_conns: int = Field(
        5,
        ge=0,
        validation_alias=env("DB_MAX_IDLE_CONNS"),
        description=(
            "Database connections kept open when idle (more are opened up to "
            "DB_MAX_OPEN_CONNS under load and closed after use)."
        ),
    )
    db_conn_max_lifetime: Seconds = Field(
        300.0,
        gt=0,
        validation_alias=env("DB_CONN_MAX_LIFETIME"),
        description="Recycle database connections older than this (e.g. '5m').",
    )
    db_pgbouncer: bool = Field(
        False,
        validation_alias=env("DB_PGBOUNCER"),
        description="Set to true when DATABASE_URL points at PgBouncer in transaction pooling"
        " mode (the guide's recommendation): every statement is then prepared unnamed and sent"
        " again with its parameters, so it runs on the server connection that parsed it, at"
        " the cost of one more round trip per statement. Not needed for a direct connection or"
        " session pooling; ignored for SQLite.",
    )
    jwt_secret: str | None = Field(
        None,
        min_length=32,
        validation_alias=env("STREAMSPACE_JWT_SECRET"),
        description="Secret signing login tokens; default: generated once and kept in the database.",
    )
    access_token_ttl: Seconds = Field(
        3600.0 * 12,
        gt=0,
        validation_alias=env("STREAMSPACE_TOKEN_TTL"),
        description="Lifetime of a login token.",
    )
    admin_username: str = Field(
        "admin",
        validation_alias=env("STREAMSPACE_ADMIN_USERNAME"),
        description="Admin created on first start.",
    )
    admin_password: str | None = Field(
        None,
        validation_alias=env("STREAMSPACE_ADMIN_PASSWORD"),
        description="Password of the first admin; `up` generates one when unset.",
    )
    agent_bootstrap_key: str | None = Field(
        None,
        min_length=16,
        validation_alias=env("AGENT_BOOTSTRAP_KEY"),
        description="Shared key that admits an agent's first registration (pending approval).",
    )
    login_max_failures: int = Field(
        5,
        ge=1,
        validation_alias=env("STREAMSPACE_LOGIN_MAX_FAILURES"),
        description="Budget per username and per client address: failed logins within the"
        " window plus logins being checked at the moment. Each attempt takes its slot before its"
        " password is checked, so parallel guesses cost at most this many checks; a full budget"
        " answers 429 with Retry-After (the rest of the window, or 1 s while it is full of"
        " attempts in flight) until the window ends or an admin clears the user's lockout.",
    )
    login_failure_window: Seconds = Field(
        300.0,
        gt=0,
        validation_alias=env("STREAMSPACE_LOGIN_FAILURE_WINDOW"),
        description="How long failed logins count, from the first one (a lockout with them).",
    )
    trusted_proxies: str = Field(
        "",
        # FORWARDED_ALLOW_IPS: what uvicorn read before TRUSTED_PROXIES existed, still honoured
        validation_alias=AliasChoices(
            "TRUSTED_PROXIES", "trusted_proxies", "FORWARDED_ALLOW_IPS", "forwarded_allow_ips"
        ),
        description="Comma-separated addresses or CIDR networks of the reverse proxies in front"
        " of this replica (nginx, haproxy), e.g. `10.0.3.0/24,127.0.0.1`. Only a request arriving"
        " from one of them has its X-Forwarded-For (and X-Forwarded-Proto) honoured: the client"
        " is the rightmost address in it that is not a trusted proxy. Empty (the default): the"
        " headers are ignored and the client is the connection's peer, which is what the"
        " per-address login budget counts. Never list addresses clients connect from. Before"
        " this setting, uvicorn's FORWARDED_ALLOW_IPS did this job; it is still read when"
        " TRUSTED_PROXIES is unset (`*` meaning every address).",
    )
    metrics_token: SecretStr | None = Field(
        None,
        min_length=16,
        validation_alias=env("STREAMSPACE_METRICS_TOKEN"),
        description="Bearer token Prometheus must send to scrape /api/v1/metrics (`Authorization:"
        " Bearer <token>`); unset: the metrics are open to anyone who reaches the port.",
    )
    hsts: Literal["auto", "always", "off"] = Field(
        "auto",
        validation_alias=env("STREAMSPACE_HSTS"),
        description="Strict-Transport-Security on responses. auto: when the request came over"
        " HTTPS (the connection's scheme, or X-Forwarded-Proto from an address in"
        " TRUSTED_PROXIES); always: on every response, for TLS ended at a proxy not in"
        " TRUSTED_PROXIES (browsers ignore it over plain HTTP); off: never.",
    )
    max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        validation_alias=env("STREAMSPACE_MAX_BODY_BYTES"),
        description="Largest accepted request body.",
    )
    log_format: Literal["text", "json"] = Field(
        "text", validation_alias=env("LOG_FORMAT"), description="Log output: text or json."
    )
    log_level: str = Field("INFO", validation_alias=env("LOG_LEVEL"), description="Log level.")
    heartbeat_interval: Seconds = Field(
        30.0,
        gt=0,
        validation_alias=env("AGENT_HEARTBEAT_INTERVAL"),
        description="Heartbeat interval agents are told to use.",
    )
    heartbeat_missed_limit: int = Field(
        3,
        ge=1,
        validation_alias=env("AGENT_HEARTBEAT_MISSED_LIMIT"),
        description="Missed heartbeats before an agent is marked offline.",
    )
    command_ack_timeout: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("COMMAND_ACK_TIMEOUT"),
        description="Resend a command not acknowledged within this time.",
    )
    command_deadline: Seconds = Field(
        300.0,
        gt=0,
        validation_alias=env("COMMAND_DEADLINE"),
        description="A command not completed within this time is timed out.",
    )
    session_start_deadline: Seconds = Field(
        300.0,
        gt=0,
        validation_alias=env("SESSION_START_DEADLINE"),
        description="A session stuck in pending/starting longer than this is failed.",
    )
    audit_retention_days: int = Field(
        0,
        ge=0,
        validation_alias=env("AUDIT_RETENTION_DAYS"),
        description="Audit events older than this many days are deleted (checked hourly by "
        "the sweeper); 0 (the default, so an upgrade deletes nothing) keeps them forever. "
        "Export them first (GET /api/v1/audit/export) if you must keep them longer elsewhere.",
    )
    sweep_interval: Seconds = Field(
        5.0,
        gt=0,
        validation_alias=env("STREAMSPACE_SWEEP_INTERVAL"),
        description="How often the cluster-wide sweeper runs.",
    )
    reaper_interval: Seconds = Field(
        30.0,
        gt=0,
        validation_alias=env("STREAMSPACE_REAPER_INTERVAL"),
        description="How often the cluster-wide idle reaper looks for idle or overdue sessions.",
    )
    activity_flush_interval: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("STREAMSPACE_ACTIVITY_FLUSH_INTERVAL"),
        description="How often viewer activity is written to the sessions (batched).",
    )
    ui_dir: Path | None = Field(
        None,
        validation_alias=env("STREAMSPACE_UI_DIR"),
        description="Built web UI to serve at / (embedded mode).",
    )
    lean_ws_server: bool = Field(
        True,
        validation_alias=env("STREAMSPACE_LEAN_WS_SERVER"),
        description="Handle open WebSockets with StreamSpace's own frame code (less CPU per"
        " message and per MB streamed; see docs/benchmarks.md). false: uvicorn's"
        " `websockets-sansio` protocol.",
    )
    lean_peer_client: bool = Field(
        True,
        validation_alias=env("STREAMSPACE_LEAN_PEER_CLIENT"),
        description="Reach the replica holding a viewer's agent with StreamSpace's own"
        " WebSocket client, which reads payloads in place (less CPU per MB; see"
        " docs/benchmarks.md). false: the `websockets` client.",
    )
    lean_redis_client: bool = Field(
        True,
        validation_alias=env("STREAMSPACE_LEAN_REDIS_CLIENT"),
        description="Run the AgentHub's lookups, publishes and subscription over StreamSpace's"
        " own pipelined Redis connections (hiredis parses). false: redis-py for those too.",
    )
    quota_default_user_sessions: int | None = Field(
        None,
        ge=0,
        validation_alias=env("QUOTA_DEFAULT_USER_SESSIONS"),
        description="Sessions (not ended or failed) one user may have at once, for users "
        "without a limit of their own. Unset: no limit.",
    )
    quota_default_user_cpu_millicores: int | None = Field(
        None,
        ge=0,
        validation_alias=env("QUOTA_DEFAULT_USER_CPU_MILLICORES"),
        description="Total CPU (millicores: 1000 = one core) of one user's sessions, for users "
        "without a limit of their own. Unset: no limit.",
    )
    quota_default_user_memory_mb: int | None = Field(
        None,
        ge=0,
        validation_alias=env("QUOTA_DEFAULT_USER_MEMORY_MB"),
        description="Total memory (MiB) of one user's sessions, for users without a limit of "
        "their own. Unset: no limit.",
    )
    quota_default_org_sessions: int | None = Field(
        None,
        ge=0,
        validation_alias=env("QUOTA_DEFAULT_ORG_SESSIONS"),
        description="Sessions (not ended or failed) all users of one org may have at once, for "
        "orgs without a limit of their own. Unset: no limit.",
    )
    quota_default_org_cpu_millicores: int | None = Field(
        None,
        ge=0,
        validation_alias=env("QUOTA_DEFAULT_ORG_CPU_MILLICORES"),
        description="Total CPU (millicores) of one org's sessions, for orgs without a limit of "
        "their own. Unset: no limit.",
    )
    quota_default_org_memory_mb: int | None = Field(
        None,
        ge=0,
        validation_alias=env("QUOTA_DEFAULT_ORG_MEMORY_MB"),
        description="Total memory (MiB) of one org's sessions, for orgs without a limit of "
        "their own. Unset: no limit.",
    )
    quota_session_default_cpu: float = Field(
        2.0,
        gt=0,
        le=256,
        validation_alias=env("QUOTA_SESSION_DEFAULT_CPU"),
        description="CPU (cores) quotas count for a session whose template sets no CPU limit: "
        "set it to the agents' SESSION_DEFAULT_CPU, which the control plane cannot see.",
    )
    quota_session_default_memory_mb: int = Field(
        2048,
        ge=64,
        validation_alias=env("QUOTA_SESSION_DEFAULT_MEMORY_MB"),
        description="Memory (MiB) quotas count for a session whose template sets no memory "
        "limit: set it to the agents' SESSION_DEFAULT_MEMORY_MB.",
    )
    # -- single sign-on (docs/identity.md); none of it set: password logins only, as before
    public_url: str | None = Field(
        None,
        validation_alias=env("STREAMSPACE_PUBLIC_URL"),
        description="The URL users open the product at (e.g. `https://streamspace.example.com`),"
        " from which the OpenID Connect redirect URI (`<url>/api/v1/auth/oidc/callback`) and"
        " the after-logout URI (`<url>/login`) are built; register both at the provider."
        " Default: the scheme and host of the request (behind a proxy, list it in"
        " TRUSTED_PROXIES so X-Forwarded-Proto is honoured).",
    )
    password_login: bool = Field(
        True,
        validation_alias=env("STREAMSPACE_PASSWORD_LOGIN"),
        description="Show the username/password form on the login page (local and LDAP"
        ' accounts). false: only the "Sign in with" button of OpenID Connect is shown; the'
        " API still accepts passwords, for the CLI and for admins locked out of the provider.",
    )
    sso_default_org: str = Field(
        "default",
        validation_alias=env("STREAMSPACE_SSO_DEFAULT_ORG"),
        description="Org that users first signing in through OpenID Connect or LDAP are created"
        " in, when no org claim (OIDC_ORG_CLAIM) names one. It must exist.",
    )
    oidc_issuer: str | None = Field(
        None,
        validation_alias=env("OIDC_ISSUER"),
        description="Issuer URL of the OpenID Connect provider (its"
        " `/.well-known/openid-configuration` is read from it). Set: the login page offers"
        ' "Sign in with OIDC_DISPLAY_NAME". Unset: no OpenID Connect.',
    )
    oidc_client_id: str = Field(
        "",
        validation_alias=env("OIDC_CLIENT_ID"),
        description="Client id StreamSpace is registered under at the provider.",
    )
    oidc_client_secret: SecretStr | None = Field(
        None,
        validation_alias=env("OIDC_CLIENT_SECRET"),
        description="Client secret (sent with HTTP Basic to the token endpoint). Unset: a"
        " public client, protected by PKCE alone.",
    )
    oidc_display_name: str = Field(
        "SSO",
        min_length=1,
        validation_alias=env("OIDC_DISPLAY_NAME"),
        description='Name on the login page\'s button: "Sign in with <name>".',
    )
    oidc_scopes: str = Field(
        "openid profile email",
        validation_alias=env("OIDC_SCOPES"),
        description="Scopes requested (space-separated; `openid` is always added).",
    )
    oidc_username_claim: str = Field(
        "preferred_username",
        validation_alias=env("OIDC_USERNAME_CLAIM"),
        description="Claim whose value (lowercased) becomes the username of a new user.",
    )
    oidc_email_claim: str = Field(
        "email", validation_alias=env("OIDC_EMAIL_CLAIM"), description="Claim with the e-mail."
    )
    oidc_name_claim: str = Field(
        "name",
        validation_alias=env("OIDC_NAME_CLAIM"),
        description="Claim with the display name.",
    )
    oidc_groups_claim: str = Field(
        "groups",
        validation_alias=env("OIDC_GROUPS_CLAIM"),
        description="Claim listing the user's groups (a list, or a comma-separated string).",
    )
    oidc_admin_groups: str = Field(
        "",
        validation_alias=env("OIDC_ADMIN_GROUPS"),
        description="Comma-separated groups whose members get the admin role of their org"
        " (checked at every sign-in); everybody else is a user. Never a platform admin.",
    )
    oidc_org_claim: str = Field(
        "",
        validation_alias=env("OIDC_ORG_CLAIM"),
        description="Claim naming the org a new user is created in (the org must exist)."
        " Empty: STREAMSPACE_SSO_DEFAULT_ORG.",
    )
    oidc_clock_skew: Seconds = Field(
        60.0,
        ge=0,
        validation_alias=env("OIDC_CLOCK_SKEW"),
        description="Clock difference with the provider tolerated when checking an ID token's"
        " times (exp, iat, nbf).",
    )
    oidc_jwks_min_refresh: Seconds = Field(
        10.0,
        ge=0,
        validation_alias=env("OIDC_JWKS_MIN_REFRESH"),
        description="An ID token signed with a key id not in the cached key set makes the"
        " provider's JWKS be fetched again (a key rotation), at most once per this interval.",
    )
    oidc_timeout: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("OIDC_TIMEOUT"),
        description="Timeout of each request to the provider (discovery, keys, token, userinfo).",
    )
    ldap_url: str | None = Field(
        None,
        validation_alias=env("LDAP_URL"),
        description="Directory server, `ldaps://host:636` or `ldap://host:389` (then with"
        " LDAP_START_TLS). Set: POST /api/v1/auth/login also checks passwords against it for"
        " users who are not local. Unset: no LDAP.",
    )
    ldap_start_tls: bool = Field(
        True,
        validation_alias=env("LDAP_START_TLS"),
        description="Upgrade an `ldap://` connection with StartTLS before binding. Only for a"
        " directory on a trusted network should this be false (passwords then travel in clear).",
    )
    ldap_ca_file: Path | None = Field(
        None,
        validation_alias=env("LDAP_CA_FILE"),
        description="PEM file of the CA(s) the directory's certificate is checked against."
        " Default: the system's CAs.",
    )
    ldap_bind_dn: str = Field(
        "",
        validation_alias=env("LDAP_BIND_DN"),
        description="DN StreamSpace binds as to search for users and groups. Empty: anonymous"
        " search.",
    )
    ldap_bind_password: SecretStr | None = Field(
        None,
        validation_alias=env("LDAP_BIND_PASSWORD"),
        description="Password of LDAP_BIND_DN.",
    )
    ldap_user_base: str = Field(
        "",
        validation_alias=env("LDAP_USER_BASE"),
        description="Search base for users, e.g. `ou=people,dc=example,dc=com`.",
    )
    ldap_user_filter: str = Field(
        "(uid={username})",
        validation_alias=env("LDAP_USER_FILTER"),
        description="Filter finding the user; `{username}` is replaced by the login's username,"
        " escaped (RFC 4515). Narrow it to admit only some, e.g."
        " `(&(uid={username})(memberOf=cn=streamspace,ou=groups,dc=example,dc=com))`.",
    )
    ldap_username_attribute: str = Field(
        "uid",
        validation_alias=env("LDAP_USERNAME_ATTRIBUTE"),
        description="Attribute with the username (lowercased) of a new user.",
    )
    ldap_email_attribute: str = Field(
        "mail",
        validation_alias=env("LDAP_EMAIL_ATTRIBUTE"),
        description="Attribute with the e-mail.",
    )
    ldap_name_attribute: str = Field(
        "cn",
        validation_alias=env("LDAP_NAME_ATTRIBUTE"),
        description="Attribute with the display name.",
    )
    ldap_group_base: str = Field(
        "",
        validation_alias=env("LDAP_GROUP_BASE"),
        description="Search base for groups. Empty: groups are not read (everybody is a user).",
    )
    ldap_group_filter: str = Field(
        "(|(member={dn})(uniqueMember={dn}))",
        validation_alias=env("LDAP_GROUP_FILTER"),
        description="Filter finding the user's groups; `{dn}` is the user's DN and `{username}`"
        " the username, both escaped.",
    )
    ldap_admin_groups: str = Field(
        "",
        validation_alias=env("LDAP_ADMIN_GROUPS"),
        description="Semicolon-separated group DNs (DNs hold commas) or cn values whose members"
        " get the admin role of their org, checked at every sign-in, e.g."
        " `cn=streamspace-admins,ou=groups,dc=example,dc=com`.",
    )
    ldap_timeout: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("LDAP_TIMEOUT"),
        description="Timeout of connecting to the directory and of each operation.",
    )
    mfa_key: SecretStr | None = Field(
        None,
        min_length=32,
        validation_alias=env("STREAMSPACE_MFA_KEY"),
        description="Key encrypting users' TOTP secrets in the database (at least 32"
        " characters, the same on every replica). Unset: a key generated once and kept in the"
        " database, so a copy of the database alone gives the factors away; set it (from a"
        " secret store) so that it does not. Changing it makes existing factors unreadable:"
        " their users need an admin to reset them.",
    )
    mfa_issuer: str = Field(
        "StreamSpace",
        min_length=1,
        max_length=64,
        validation_alias=env("STREAMSPACE_MFA_ISSUER"),
        description="Name authenticator apps show next to the username for this installation's"
        " codes (the otpauth:// issuer).",
    )
    mfa_challenge_ttl: Seconds = Field(
        300.0,
        gt=0,
        le=3600,
        validation_alias=env("STREAMSPACE_MFA_CHALLENGE_TTL"),
        description="How long a login's second step (a TOTP or recovery code, or enrolment"
        " when the org requires a factor) may take after the password was accepted.",
    )
    embedded: bool = Field(False, description="Set by `streamspace up`: single-process mode.")
    webhook_poll_interval: Seconds = Field(
        1.0,
        gt=0,
        validation_alias=env("WEBHOOK_POLL_INTERVAL"),
        description="How often each replica looks for webhook deliveries that are due.",
    )
    webhook_connect_timeout: Seconds = Field(
        5.0,
        gt=0,
        validation_alias=env("WEBHOOK_CONNECT_TIMEOUT"),
        description="Time allowed to connect to a webhook receiver (TCP and TLS).",
    )
    webhook_timeout: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("WEBHOOK_TIMEOUT"),
        description="Time allowed for one delivery attempt as a whole (connect, send, answer);"
        " past it the attempt failed and is retried.",
    )
    webhook_lease: Seconds = Field(
        30.0,
        gt=0,
        validation_alias=env("WEBHOOK_LEASE"),
        description="How long a replica owns a delivery it is sending. A replica that dies"
        " mid-delivery leaves it to another replica after this; must exceed WEBHOOK_TIMEOUT.",
    )
    webhook_max_attempts: int = Field(
        10,
        ge=1,
        validation_alias=env("WEBHOOK_MAX_ATTEMPTS"),
        description="Attempts per delivery before it is marked failed (an admin can redeliver it).",
    )
    webhook_retry_base: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("WEBHOOK_RETRY_BASE"),
        description="Wait after the first failed attempt; doubled after each further one (with"
        " +-20% jitter), up to WEBHOOK_RETRY_MAX.",
    )
    webhook_retry_max: Seconds = Field(
        3600.0,
        gt=0,
        validation_alias=env("WEBHOOK_RETRY_MAX"),
        description="Longest wait between two attempts of a delivery.",
    )
    webhook_log_retention: Seconds = Field(
        30 * 86400.0,
        gt=0,
        validation_alias=env("WEBHOOK_LOG_RETENTION"),
        description="How long delivered and failed webhook deliveries stay in the delivery log"
        " (pending ones stay until sent or failed).",
    )
    webhook_ca_bundle: Path | None = Field(
        None,
        validation_alias=env("WEBHOOK_CA_BUNDLE"),
        description="PEM file of extra CA certificates trusted for webhook receivers (a private"
        " CA), besides the system's.",
    )
    webhook_deny_private_addresses: bool = Field(
        True,
        validation_alias=env("WEBHOOK_DENY_PRIVATE_ADDRESSES"),
        description="Refuse webhook deliveries to loopback, private, link-local (cloud metadata)"
        " and other non-public addresses, checked on every attempt after name resolution."
        " false: allow them (receivers inside your network; see docs/identity.md).",
    )

    @field_validator("redis_sentinel_hosts")
    @classmethod
    def _check_sentinels(cls, value: str) -> str:
        for entry in split_list(value):
            parse_host_port(entry)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        if value.strip() == "*":  # uvicorn's FORWARDED_ALLOW_IPS spelling of "everyone"
            value = "0.0.0.0/0,::/0"
        for entry in split_list(value):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
        return value

    @model_validator(mode="after")
    def _check(self) -> ControlPlaneSettings:
        if self.db_max_idle_conns > self.db_max_open_conns:
            raise ValueError("DB_MAX_IDLE_CONNS cannot exceed DB_MAX_OPEN_CONNS")
        if self.oidc_issuer and not self.oidc_client_id:
            raise ValueError("OIDC_ISSUER is set: OIDC_CLIENT_ID is required too")
        if self.ldap_url and not self.ldap_url.startswith(("ldap://", "ldaps://")):
            raise ValueError("LDAP_URL must start with ldaps:// or ldap://")
        if self.webhook_lease <= self.webhook_timeout:
            raise ValueError("WEBHOOK_LEASE must exceed WEBHOOK_TIMEOUT")
        if self.webhook_ca_bundle is not None and not self.webhook_ca_bundle.is_file():
            raise ValueError(f"WEBHOOK_CA_BUNDLE {self.webhook_ca_bundle} is not a file")
        return self

    @property
    def redis_enabled(self) -> bool:
        return self.agenthub_redis_enabled or self.cache_enabled

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'streamspace.db').resolve()}"

    @property
    def redis_sentinels(self) -> tuple[tuple[str, int], ...]:
        """REDIS_SENTINEL_HOSTS as (host, port) pairs; empty without Sentinel."""
        return tuple(parse_host_port(entry) for entry in split_list(self.redis_sentinel_hosts))

    @property
    def trusted_proxy_networks(self) -> list[str]:
        """TRUSTED_PROXIES as normalised networks (`10.0.0.7` -> `10.0.0.7/32`)."""
        return [
            str(ipaddress.ip_network(entry, strict=False))
            for entry in split_list(self.trusted_proxies)
        ]

    def redis_url(self, db: int) -> str:
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{db}"

    @property
    def effective_internal_url(self) -> str:
        if self.internal_url:
            return self.internal_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def describe_validation_error(exc: ValidationError) -> str:
    """Turn a pydantic error into one line per bad setting, naming the env var."""
    lines = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        lines.append(f"{name.upper()}: {err['msg']}")
    return "invalid settings: " + "; ".join(lines)


def load_settings(**overrides: object) -> ControlPlaneSettings:
    """Read the environment once; raise ConfigError with a readable message on bad values."""
    try:
        return ControlPlaneSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
