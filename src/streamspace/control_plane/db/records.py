"""ORM records: the control plane's tables. Portable across SQLite and PostgreSQL.

Only column definitions live here; queries live in repositories and services.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from streamspace.control_plane.asgi import request_context


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (naive storage) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class OrgRecord(Base):
    __tablename__ = "orgs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # quotas of the whole org (revision 0007); None = QUOTA_DEFAULT_ORG_* (unset: no limit)
    quota_sessions: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    quota_cpu_millicores: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    quota_memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    # every local user of the org must have a second factor to log in (revision 0010)
    mfa_required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class UserRecord(Base):
    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    # an admin who also runs the platform: agents, replicas, orgs (revision 0003)
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # set when an admin removed the user: the row stays for history, the name stays taken
    removed_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    # the user's own quotas (revision 0007); None = QUOTA_DEFAULT_USER_* (unset: no limit)
    quota_sessions: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    quota_cpu_millicores: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    quota_memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    # where the user signs in (revision 0009): "local" (password_hash), "oidc" or "ldap", with
    # their identity there (the provider's sub, the directory's DN) and what it says of them
    auth_source: Mapped[str] = mapped_column(String(16), default="local", server_default="local")
    external_subject: Mapped[str | None] = mapped_column(String(255), nullable=True, default=None)
    email: Mapped[str | None] = mapped_column(String(255), nullable=True, default=None)
    display_name: Mapped[str | None] = mapped_column(String(255), nullable=True, default=None)

    __table_args__ = (
        Index("ix_users_external_identity", "auth_source", "external_subject", unique=True),
    )


class LoginSessionRecord(Base):
    """Server-side login sessions when Redis is not enabled: a token is valid only while here."""

    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime] = mapped_column()
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TemplateRecord(Base):
    __tablename__ = "templates"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    name: Mapped[str] = mapped_column(String(63))
    display_name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(50), default="General")
    icon: Mapped[str] = mapped_column(String(255), default="")
    image: Mapped[str] = mapped_column(String(255))
    vnc_port: Mapped[int] = mapped_column(Integer, default=5900)
    cpu_limit: Mapped[float | None] = mapped_column(Float, nullable=True)
    memory_limit_mb: Mapped[int | None] = mapped_column(Integer, nullable=True)
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    persistent_home: Mapped[bool] = mapped_column(Boolean, default=True)
    # never | if-missing | always; None = the agent platform's default (revision 0002)
    pull: Mapped[str | None] = mapped_column(String(16), nullable=True, default=None)
    # may sessions reach the internet (never the host or private ranges) (revision 0004)
    egress: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    idle_timeout_s: Mapped[int] = mapped_column(Integer, default=1800)
    max_duration_s: Mapped[int] = mapped_column(Integer, default=8 * 3600)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    __table_args__ = (Index("ux_templates_org_name", "org_id", "name", unique=True),)


class SessionRecord(Base):
    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    template_id: Mapped[str | None] = mapped_column(
        ForeignKey("templates.id", ondelete="SET NULL"), nullable=True
    )
    template_name: Mapped[str] = mapped_column(String(63))
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id"), index=True, nullable=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_reason: Mapped[str] = mapped_column(Text, default="")
    vnc_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    vnc_port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    terminated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # what quotas count this session for, fixed at its creation (revision 0007); None on
    # sessions created before: QUOTA_SESSION_DEFAULT_CPU / _MEMORY_MB; 0 = no limit asked
    cpu_millicores: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)
    memory_mb: Mapped[int | None] = mapped_column(Integer, nullable=True, default=None)


class AgentRecord(Base):
    __tablename__ = "agents"
    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    platform: Mapped[str] = mapped_column(String(20))
    region: Mapped[str] = mapped_column(String(50), default="default")
    max_sessions: Mapped[int] = mapped_column(Integer, default=10)
    capacity: Mapped[dict[str, Any]] = mapped_column(default=dict)
    agent_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    approval_status: Mapped[str] = mapped_column(String(16), default="pending")
    api_key_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    key_delivered: Mapped[bool] = mapped_column(Boolean, default=False)
    pending_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="offline")
    pod_name: Mapped[str | None] = mapped_column(String(255), nullable=True)
    epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    draining: Mapped[bool] = mapped_column(Boolean, default=False)
    active_sessions: Mapped[int] = mapped_column(Integer, default=0)
    last_heartbeat: Mapped[datetime | None] = mapped_column(nullable=True)
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AgentCommandRecord(Base):
    """A durable command: pending -> sent -> ack -> completed | failed | timeout."""

    __tablename__ = "agent_commands"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("sessions.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(nullable=True)
    acked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEventRecord(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    org_id: Mapped[str | None] = mapped_column(String(32), index=True, nullable=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(120), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # The request that did it: its client's address and its X-Request-ID, read from the
    # request being served when the row is written ("" outside a request).
    address: Mapped[str] = mapped_column(String(64), default=request_context.client_address)
    request_id: Mapped[str] = mapped_column(String(64), default=request_context.request_id)


class ReplicaRecord(Base):
    """Live control-plane replicas (heartbeat rows), for /api/v1/pods and peer relays."""

    __tablename__ = "replicas"
    pod_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    internal_url: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow)


class LeaseRecord(Base):
    """Cluster-wide singleton leases (sweeper, reaper): one holder at a time, with expiry."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column()


# the system_settings key of this installation's id (control_plane/app.py: installation_id)
INSTALLATION_KEY = "installation_id"


class SystemSettingRecord(Base):
    __tablename__ = "system_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ApiTokenRecord(Base):
    """Personal API tokens (revision 0006): `sst_<id>_<secret>`, of which only a SHA-256 of
    the whole string is kept (auth/api_tokens.py says why not a password hash)."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    scope: Mapped[str] = mapped_column(String(8))  # read | full
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    # written at most once a minute per token, not on every request
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    last_used_address: Mapped[str] = mapped_column(String(64), default="")
    # when the last token.used audit event was written (at most hourly, or on a new address)
    use_audited_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    revoked_by: Mapped[str] = mapped_column(String(64), default="")


class WebhookRecord(Base):
    """An HTTPS endpoint an org registered for event types (revision 0008). The secret signs
    every delivery, so it is kept as written (shown to the admin once, at creation)."""

    __tablename__ = "webhooks"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    org_id: Mapped[str] = mapped_column(ForeignKey("orgs.id"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(255))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(120), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookDeliveryRecord(Base):
    """One event for one webhook: pending -> delivered | failed (revision 0008). Its id is the
    event id the receiver dedupes on; a replica sending it holds a lease on the row."""

    __tablename__ = "webhook_deliveries"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    webhook_id: Mapped[str] = mapped_column(
        ForeignKey("webhooks.id", ondelete="CASCADE"), index=True
    )
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_response: Mapped[str] = mapped_column(Text, default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    lease_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    # the delivery loop's one query: due rows, oldest first
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)


class MfaFactorRecord(Base):
    """A user's TOTP factor (revision 0010); pending until its first code is confirmed."""

    __tablename__ = "mfa_factors"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    secret: Mapped[str] = mapped_column(Text)  # encrypted (auth/totp.py SecretCipher)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
    # the last time step a code was accepted for: that code and older ones are refused
    last_step: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # the last completed second step: login challenges issued before it are spent
    last_login_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)


class MfaRecoveryCodeRecord(Base):
    """A one-time recovery code, as its SHA-256 (revision 0010)."""

    __tablename__ = "mfa_recovery_codes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    used_at: Mapped[datetime | None] = mapped_column(nullable=True, default=None)
