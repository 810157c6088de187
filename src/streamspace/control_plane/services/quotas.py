"""Quotas: how many sessions, how much CPU and memory a user and an org may hold at once; the
one decision whether a create is refused (`refusal`), usage reports, and admins' limit edits.
Not the agents' capacity (services/scheduler.py) nor what an agent applies to a container.

A session counts from its create until it ends or fails: pending, starting, running,
hibernating, hibernated and waking. A hibernated session keeps its whole reservation, so a
resume is never refused; a terminating one no longer counts (the user asked for it to go)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import (
    AuditEventRecord,
    OrgRecord,
    SessionRecord,
    TemplateRecord,
    UserRecord,
)
from streamspace.control_plane.services.users import managed_user
from streamspace.errors import NotFound, QuotaExceeded

COUNTED_STATES = ("pending", "starting", "running", "hibernating", "hibernated", "waking")
Scope = Literal["user", "org"]
Resource = Literal["sessions", "cpu_millicores", "memory_mb"]
_COLUMNS: dict[Resource, str] = {
    "sessions": "quota_sessions",
    "cpu_millicores": "quota_cpu_millicores",
    "memory_mb": "quota_memory_mb",
}


@dataclass(frozen=True, kw_only=True)
class Amounts:
    """Sessions, CPU and memory: a limit (None = none), a usage, or one session's size (None
    = the template asks for no limit)."""

    sessions: int | None = None
    cpu_millicores: int | None = None
    memory_mb: int | None = None

    def get(self, resource: Resource) -> int | None:
        value: int | None = getattr(self, resource)
        return value

    def over(self, default: Amounts) -> Amounts:
        """These amounts where set, else `default`'s."""
        return Amounts(
            sessions=default.sessions if self.sessions is None else self.sessions,
            cpu_millicores=default.cpu_millicores
            if self.cpu_millicores is None
            else self.cpu_millicores,
            memory_mb=default.memory_mb if self.memory_mb is None else self.memory_mb,
        )

    @property
    def unlimited(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


def own_limits(row: OrgRecord | UserRecord) -> Amounts:
    return Amounts(
        sessions=row.quota_sessions,
        cpu_millicores=row.quota_cpu_millicores,
        memory_mb=row.quota_memory_mb,
    )


@dataclass(frozen=True, kw_only=True)
class QuotaPolicy:
    """The installation's defaults (QUOTA_DEFAULT_*) and what a session without limits of its
    template counts for (QUOTA_SESSION_DEFAULT_*: the agents' defaults, which the control
    plane cannot see)."""

    user: Amounts = Amounts()
    org: Amounts = Amounts()
    session_cpu_millicores: int = 2000
    session_memory_mb: int = 2048

    @classmethod
    def from_settings(cls, settings: ControlPlaneSettings) -> QuotaPolicy:
        return cls(
            user=Amounts(
                sessions=settings.quota_default_user_sessions,
                cpu_millicores=settings.quota_default_user_cpu_millicores,
                memory_mb=settings.quota_default_user_memory_mb,
            ),
            org=Amounts(
                sessions=settings.quota_default_org_sessions,
                cpu_millicores=settings.quota_default_org_cpu_millicores,
                memory_mb=settings.quota_default_org_memory_mb,
            ),
            session_cpu_millicores=round(settings.quota_session_default_cpu * 1000),
            session_memory_mb=settings.quota_session_default_memory_mb,
        )

    def session_size(self, template: TemplateRecord) -> Amounts:
        """What one session of `template` counts for: the template's limits as the agent
        applies them (none set: the agents' default; 0: no limit, counted as None)."""
        cpu = template.cpu_limit
        memory = template.memory_limit_mb
        return Amounts(
            sessions=1,
            cpu_millicores=self.session_cpu_millicores
            if cpu is None
            else (round(cpu * 1000) if cpu > 0 else None),
            memory_mb=self.session_memory_mb
            if memory is None
            else (memory if memory > 0 else None),
        )


@dataclass(frozen=True, kw_only=True)
class Breach:
    """The limit a create would exceed: whose (`scope`), of what, how much is held, how much
    the new session needs (None: it asks for no limit, which no quota can count)."""

    scope: Scope
    name: str  # the user's or the org's name
    resource: Resource
    used: int
    requested: int | None
    limit: int

    def describe(self) -> dict[str, Any]:
        return {
            "scope": self.scope,
            "name": self.name,
            "resource": self.resource,
            "used": self.used,
            "requested": self.requested,
            "limit": self.limit,
        }

    @property
    def message(self) -> str:
        whose = "your" if self.scope == "user" else f"org {self.name!r}'s"
        if self.requested is None:
            return (
                f"quota exceeded: the template asks for unlimited {_WORDS[self.resource]}, which "
                f"{whose} {_WORDS[self.resource]} limit of {_show(self.resource, self.limit)} "
                "cannot count; ask an admin to give the template a limit"
            )
        return (
            f"quota exceeded: {whose} {_WORDS[self.resource]} limit is "
            f"{_show(self.resource, self.limit)} and {_show(self.resource, self.used)} "
            f"{'are' if self.resource == 'sessions' else 'is'} in use; this session needs "
            f"{_show(self.resource, self.requested)} more"
        )

    def error(self) -> QuotaExceeded:
        return QuotaExceeded(self.message, quota=self.describe())


_WORDS: dict[Resource, str] = {
    "sessions": "sessions",
    "cpu_millicores": "CPU",
    "memory_mb": "memory",
}


def _show(resource: Resource, value: int) -> str:
    if resource == "cpu_millicores":
        return f"{value / 1000:g} CPU"
    if resource == "memory_mb":
        return f"{value} MiB"
    return f"{value} session{'s' if value != 1 else ''}"


@dataclass(frozen=True, kw_only=True)
class Usage:
    user: Amounts
    org: Amounts


async def usage(db: AsyncSession, *, policy: QuotaPolicy, org_id: str, user_id: str) -> Usage:
    """What the user and their whole org hold now, in one query."""
    cpu = func.coalesce(SessionRecord.cpu_millicores, policy.session_cpu_millicores)
    memory = func.coalesce(SessionRecord.memory_mb, policy.session_memory_mb)
    mine = SessionRecord.user_id == user_id
    row = (
        await db.execute(
            select(
                func.count(),
                func.coalesce(func.sum(cpu), 0),
                func.coalesce(func.sum(memory), 0),
                func.coalesce(func.sum(case((mine, 1), else_=0)), 0),
                func.coalesce(func.sum(case((mine, cpu), else_=0)), 0),
                func.coalesce(func.sum(case((mine, memory), else_=0)), 0),
            ).where(SessionRecord.org_id == org_id, SessionRecord.state.in_(COUNTED_STATES))
        )
    ).one()
    values = [int(v) for v in row]
    return Usage(
        org=Amounts(sessions=values[0], cpu_millicores=values[1], memory_mb=values[2]),
        user=Amounts(sessions=values[3], cpu_millicores=values[4], memory_mb=values[5]),
    )


async def _lock_org(db: AsyncSession, *, org_id: str) -> None:
    """Serialise the creates of one org until this transaction ends, on every replica: the
    count and the insert after it see no other create in between. PostgreSQL locks the org's
    row; SQLite has no row locks, and a write (a no-op update) takes its database-wide write
    lock, which a mere SELECT would not (pysqlite begins a transaction at the first write)."""
    if db.get_bind().dialect.name == "sqlite":
        await db.execute(
            update(OrgRecord)
            .where(OrgRecord.id == org_id)
            .values(name=OrgRecord.name)
            .execution_options(synchronize_session=False)
        )
    else:
        # FOR NO KEY UPDATE: creates wait for each other, inserts that merely reference the
        # org (its users, its templates) do not
        await db.execute(
            select(OrgRecord.id).where(OrgRecord.id == org_id).with_for_update(key_share=True)
        )


async def refusal(
    db: AsyncSession, *, policy: QuotaPolicy, org_id: str, user_id: str, size: Amounts
) -> Breach | None:
    """THE decision on a create: the first limit the new session of `size` would exceed (the
    user's before the org's; sessions, CPU, memory), or None when it fits. Inside the create's
    transaction: from here to its commit no other create of the org can count (`_lock_org`).
    With no limit in effect (nothing configured) it takes no lock and reads no sessions."""
    org, user = await _rows(db, org_id=org_id, user_id=user_id)
    if own_limits(user).over(policy.user).unlimited and own_limits(org).over(policy.org).unlimited:
        return None
    await _lock_org(db, org_id=org_id)
    org, user = await _rows(db, org_id=org_id, user_id=user_id, fresh=True)  # as of the lock
    held = await usage(db, policy=policy, org_id=org_id, user_id=user_id)
    for scope, name, limits, used in (
        ("user", user.username, own_limits(user).over(policy.user), held.user),
        ("org", org.name, own_limits(org).over(policy.org), held.org),
    ):
        for resource in _COLUMNS:
            limit, need = limits.get(resource), size.get(resource)
            if limit is None:
                continue
            now = used.get(resource) or 0
            if need is None or now + need > limit:
                return Breach(
                    scope=scope,  # type: ignore[arg-type]
                    name=name,
                    resource=resource,
                    used=now,
                    requested=need,
                    limit=limit,
                )
    return None


async def _rows(
    db: AsyncSession, *, org_id: str, user_id: str, fresh: bool = False
) -> tuple[OrgRecord, UserRecord]:
    options = {"populate_existing": True} if fresh else {}
    org = await db.get(OrgRecord, org_id, execution_options=options)
    user = await db.get(UserRecord, user_id, execution_options=options)
    if org is None or user is None:
        raise NotFound("user or org not found")
    return org, user


def refused_event(*, principal: Principal, template: str, breach: Breach) -> AuditEventRecord:
    return AuditEventRecord(
        org_id=principal.org_id,
        actor=principal.username,
        action="session.create_refused",
        target=principal.user_id,
        detail={"template": template, "quota": breach.describe()},
    )


@dataclass(frozen=True, kw_only=True)
class ScopeReport:
    limits: Amounts  # in effect: own, else the installation's default
    own: Amounts  # set on the user or org itself
    usage: Amounts


@dataclass(frozen=True, kw_only=True)
class QuotaReport:
    user: ScopeReport
    org: ScopeReport


async def report(
    sessions: async_sessionmaker[AsyncSession], *, policy: QuotaPolicy, user_id: str
) -> QuotaReport:
    """Limits and usage of a user and of their org (for the user's own page, or an admin's)."""
    async with sessions() as db:
        user = await db.get(UserRecord, user_id)
        if user is None:
            raise NotFound("user not found")
        org = await db.get(OrgRecord, user.org_id)
        assert org is not None  # a user's org cannot go (foreign key)
        held = await usage(db, policy=policy, org_id=org.id, user_id=user.id)
    return QuotaReport(
        user=ScopeReport(
            limits=own_limits(user).over(policy.user), own=own_limits(user), usage=held.user
        ),
        org=ScopeReport(
            limits=own_limits(org).over(policy.org), own=own_limits(org), usage=held.org
        ),
    )


async def org_report(
    sessions: async_sessionmaker[AsyncSession], *, policy: QuotaPolicy, org_id: str
) -> ScopeReport:
    async with sessions() as db:
        org = await db.get(OrgRecord, org_id)
        if org is None:
            raise NotFound("org not found")
        held = await usage(db, policy=policy, org_id=org.id, user_id="")
    return ScopeReport(limits=own_limits(org).over(policy.org), own=own_limits(org), usage=held.org)


def _apply(row: OrgRecord | UserRecord, limits: Amounts) -> dict[str, list[int | None]]:
    """Set the row's own limits; the changes as {resource: [old, new]}."""
    changed: dict[str, list[int | None]] = {}
    for resource, column in _COLUMNS.items():
        old, new = getattr(row, column), limits.get(resource)
        if old != new:
            changed[resource] = [old, new]
            setattr(row, column, new)
    return changed


async def set_user_limits(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, user_id: str, limits: Amounts
) -> UserRecord:
    """An org admin sets a user's own limits (None: the default applies). Lowering one below
    what the user holds ends nothing: their sessions keep running, new creates are refused.
    A limit above the org's is allowed and changes nothing while the org's is lower."""
    async with sessions.begin() as db:
        user = await managed_user(db, actor=actor, user_id=user_id)
        changed = _apply(user, limits)
        if changed:
            db.add(
                _updated(
                    actor=actor,
                    org_id=user.org_id,
                    target=user.id,
                    detail={"user": user.username, **changed},
                )
            )
    return user


async def set_org_limits(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, org_id: str, limits: Amounts
) -> OrgRecord:
    """A platform admin sets an org's own limits (None: the default applies)."""
    async with sessions.begin() as db:
        org = await db.get(OrgRecord, org_id, with_for_update=True)
        if org is None:
            raise NotFound("org not found")
        changed = _apply(org, limits)
        if changed:
            db.add(
                _updated(
                    actor=actor, org_id=org.id, target=org.id, detail={"org": org.name, **changed}
                )
            )
    return org


def _updated(
    *, actor: Principal, org_id: str, target: str, detail: dict[str, Any]
) -> AuditEventRecord:
    return AuditEventRecord(
        org_id=org_id, actor=actor.username, action="quota.updated", target=target, detail=detail
    )
