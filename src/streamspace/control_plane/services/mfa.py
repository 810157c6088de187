"""TOTP second factors of local users: enrolment, the login's second step, disabling,
recovery codes, an admin's reset and an org's "MFA required" flag. Owns its transactions and
audits each change in it; counting wrong codes against the login budgets is the API's part.

Users without a local password (signed in by an identity provider) have no factor here: their
provider does their MFA."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import CursorResult, Update, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth import totp
from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import (
    AuditEventRecord,
    MfaFactorRecord,
    MfaRecoveryCodeRecord,
    OrgRecord,
    UserRecord,
)
from streamspace.control_plane.services.users import managed_user
from streamspace.errors import Conflict, NotFound, Unauthenticated

LoginStep = Literal["none", "code", "enrol"]


def has_local_password(user: UserRecord) -> bool:
    """A password this installation checks (argon2), not a user an identity provider (OpenID
    Connect, LDAP) signs in: theirs does their second factor."""
    return user.auth_source == "local" and user.password_hash.startswith("$argon2")


@dataclass(frozen=True, kw_only=True)
class Enrolment:
    secret: str
    uri: str
    qr: str


@dataclass(frozen=True, kw_only=True)
class Status:
    enabled: bool
    confirmed_at: datetime | None
    recovery_codes_left: int
    required: bool
    available: bool


@dataclass(frozen=True, kw_only=True)
class SecondStep:
    method: Literal["totp", "recovery"]
    recovery_codes: list[str] | None = None  # when this step completed an enrolment


def _at(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


async def login_step(sessions: async_sessionmaker[AsyncSession], *, user: UserRecord) -> LoginStep:
    """What a password login of `user` still needs: nothing, a code, or enrolling first
    (their org requires a factor and they have none)."""
    if not has_local_password(user):
        return "none"
    async with sessions() as db:
        factor = await db.get(MfaFactorRecord, user.id)
        if factor is not None and factor.confirmed_at is not None:
            return "code"
        required = await db.scalar(
            select(OrgRecord.mfa_required).where(OrgRecord.id == user.org_id)
        )
    return "enrol" if required else "none"


async def status(sessions: async_sessionmaker[AsyncSession], *, user_id: str) -> Status:
    async with sessions() as db:
        user = await db.get(UserRecord, user_id)
        if user is None:
            raise NotFound("user not found")
        factor = await db.get(MfaFactorRecord, user_id)
        left = await db.scalars(
            select(MfaRecoveryCodeRecord.id).where(
                MfaRecoveryCodeRecord.user_id == user_id, MfaRecoveryCodeRecord.used_at.is_(None)
            )
        )
        required = await db.scalar(
            select(OrgRecord.mfa_required).where(OrgRecord.id == user.org_id)
        )
    confirmed = factor.confirmed_at if factor is not None else None
    return Status(
        enabled=confirmed is not None,
        confirmed_at=confirmed,
        recovery_codes_left=len(left.all()) if confirmed else 0,
        required=bool(required),
        available=has_local_password(user),
    )


async def start_enrolment(
    sessions: async_sessionmaker[AsyncSession],
    *,
    cipher: totp.SecretCipher,
    user_id: str,
    issuer: str,
) -> Enrolment:
    """A new secret, pending until `confirm` sees a code of it; replaces a pending one (the
    QR code scanned last is the one that counts). Refused while a factor is active."""
    secret = totp.new_secret()
    async with sessions.begin() as db:
        user = await db.get(UserRecord, user_id, with_for_update=True)
        if user is None or user.removed_at is not None:
            raise NotFound("user not found")
        if not has_local_password(user):
            raise Conflict(
                "your identity provider checks your second factor, not StreamSpace",
                code="mfa_not_local",
            )
        factor = await db.get(MfaFactorRecord, user_id, with_for_update=True)
        if factor is not None and factor.confirmed_at is not None:
            raise Conflict(
                "a second factor is already active: disable it first", code="mfa_enabled"
            )
        if factor is None:
            db.add(MfaFactorRecord(user_id=user_id, secret=cipher.encrypt(secret)))
        else:
            factor.secret, factor.last_step = cipher.encrypt(secret), 0
        username = user.username
    uri = totp.provisioning_uri(secret, username=username, issuer=issuer)
    return Enrolment(secret=secret, uri=uri, qr=totp.qr_svg_data_uri(uri))


async def confirm_enrolment(
    sessions: async_sessionmaker[AsyncSession],
    *,
    cipher: totp.SecretCipher,
    user_id: str,
    code: str,
    now: float,
) -> list[str] | None:
    """Activate the pending factor if `code` is one of its current codes: its new recovery
    codes (shown once), or None for a wrong code (a failure the caller counts)."""
    async with sessions.begin() as db:
        user, factor = await _locked_factor(db, user_id=user_id)
        if factor.confirmed_at is not None:
            raise Conflict("a second factor is already active", code="mfa_enabled")
        return await _confirm(db, cipher=cipher, user=user, factor=factor, code=code, now=now)


async def _confirm(
    db: AsyncSession,
    *,
    cipher: totp.SecretCipher,
    user: UserRecord,
    factor: MfaFactorRecord,
    code: str,
    now: float,
) -> list[str] | None:
    step = totp.matching_step(cipher.decrypt(factor.secret), code=code, now=now, after=0)
    if step is None or not await _claim_step(db, user_id=user.id, step=step):
        return None
    factor.confirmed_at = _at(now)
    codes = await _replace_codes(db, user_id=user.id)
    db.add(_audit(actor=user.username, user=user, action="mfa.enrolled", detail={}))
    return codes


async def second_step(
    sessions: async_sessionmaker[AsyncSession],
    *,
    cipher: totp.SecretCipher,
    user_id: str,
    issued_at: float,
    enrol: bool,
    code: str | None,
    recovery_code: str | None,
    now: float,
) -> SecondStep | None:
    """Complete a login whose password was accepted at `issued_at`: with a current code, an
    unused recovery code, or (`enrol`) the first code of the factor enrolled during it. None
    for a wrong code. Each challenge is spent by the first step that succeeds after it was
    issued, as is each code: neither can be replayed."""
    async with sessions.begin() as db:
        user, factor = await _locked_factor(db, user_id=user_id, stale_code="mfa_challenge_stale")
        if user.disabled or user.removed_at is not None:
            raise Unauthenticated("this account is disabled", code="invalid_credentials")
        spent = factor.last_login_at is not None and _at(issued_at) <= factor.last_login_at
        if spent:
            raise Unauthenticated(
                "this sign-in was already completed or superseded: sign in again",
                code="mfa_challenge_spent",
            )
        result = await _step(
            db,
            cipher=cipher,
            user=user,
            factor=factor,
            enrol=enrol,
            code=code,
            recovery_code=recovery_code,
            now=now,
        )
        if result is not None and not await _claim_login(
            db, user_id=user.id, issued_at=issued_at, now=now
        ):
            raise Unauthenticated(  # a parallel second step of the same challenge won
                "this sign-in was already completed or superseded: sign in again",
                code="mfa_challenge_spent",
            )
        return result


async def _step(
    db: AsyncSession,
    *,
    cipher: totp.SecretCipher,
    user: UserRecord,
    factor: MfaFactorRecord,
    enrol: bool,
    code: str | None,
    recovery_code: str | None,
    now: float,
) -> SecondStep | None:
    if factor.confirmed_at is None:
        if not enrol or code is None:
            raise Unauthenticated(
                "no active second factor: sign in again", code="mfa_challenge_stale"
            )
        codes = await _confirm(db, cipher=cipher, user=user, factor=factor, code=code, now=now)
        return None if codes is None else SecondStep(method="totp", recovery_codes=codes)
    if code is not None:
        return SecondStep(method="totp") if await _accept(db, cipher, factor, code, now) else None
    if recovery_code is not None and await _use_recovery(
        db, user=user, code=recovery_code, now=now
    ):
        return SecondStep(method="recovery")
    return None


async def _accept(
    db: AsyncSession, cipher: totp.SecretCipher, factor: MfaFactorRecord, code: str, now: float
) -> bool:
    secret = cipher.decrypt(factor.secret)
    step = totp.matching_step(secret, code=code, now=now, after=factor.last_step)
    return step is not None and await _claim_step(db, user_id=factor.user_id, step=step)


# Each claim below is one conditional UPDATE, so two requests using the same code, recovery
# code or challenge at the same moment cannot both pass: on PostgreSQL the factor row is
# locked as well, but SQLite (the driver begins its transaction at the first write) ignores
# FOR UPDATE, and an UPDATE is the first point where it serialises writers.


async def _claim_step(db: AsyncSession, *, user_id: str, step: int) -> bool:
    """Record `step` as the factor's last accepted one, unless one as late already is."""
    return await _changed(
        db,
        update(MfaFactorRecord)
        .where(MfaFactorRecord.user_id == user_id, MfaFactorRecord.last_step < step)
        .values(last_step=step),
    )


async def _claim_login(db: AsyncSession, *, user_id: str, issued_at: float, now: float) -> bool:
    """Record a completed second step, unless one completed after the challenge was issued."""
    last = MfaFactorRecord.last_login_at
    return await _changed(
        db,
        update(MfaFactorRecord)
        .where(MfaFactorRecord.user_id == user_id, or_(last.is_(None), last < _at(issued_at)))
        .values(last_login_at=_at(now)),
    )


async def _changed(db: AsyncSession, statement: Update) -> bool:
    result = await db.execute(statement.execution_options(synchronize_session=False))
    return cast("CursorResult[Any]", result).rowcount == 1


async def _use_recovery(db: AsyncSession, *, user: UserRecord, code: str, now: float) -> bool:
    unused = (
        await db.scalars(
            select(MfaRecoveryCodeRecord).where(
                MfaRecoveryCodeRecord.user_id == user.id, MfaRecoveryCodeRecord.used_at.is_(None)
            )
        )
    ).all()
    digest = totp.hash_recovery_code(code)
    match = next((row for row in unused if row.code_hash == digest), None)
    if match is None:
        return False
    used = await _changed(
        db,
        update(MfaRecoveryCodeRecord)
        .where(MfaRecoveryCodeRecord.id == match.id, MfaRecoveryCodeRecord.used_at.is_(None))
        .values(used_at=_at(now)),
    )
    if not used:
        return False
    detail = {"recovery_codes_left": len(unused) - 1}
    db.add(_audit(actor=user.username, user=user, action="mfa.recovery_used", detail=detail))
    return True


async def check_code(
    sessions: async_sessionmaker[AsyncSession],
    *,
    cipher: totp.SecretCipher,
    user_id: str,
    code: str,
    now: float,
) -> bool:
    """A current code of the user's active factor (spent by this check), to confirm a change
    of the factor itself."""
    async with sessions.begin() as db:
        _, factor = await _locked_factor(db, user_id=user_id)
        if factor.confirmed_at is None:
            raise NotFound("you have no active second factor", code="mfa_not_enabled")
        return await _accept(db, cipher, factor, code, now)


async def disable(sessions: async_sessionmaker[AsyncSession], *, user_id: str) -> None:
    """Remove your own factor and its recovery codes (the caller checked a code or password)."""
    async with sessions.begin() as db:
        user, factor = await _locked_factor(db, user_id=user_id)
        if factor.confirmed_at is None:
            raise NotFound("you have no active second factor", code="mfa_not_enabled")
        await _remove(db, user_id=user_id)
        db.add(_audit(actor=user.username, user=user, action="mfa.disabled", detail={}))


async def regenerate_codes(
    sessions: async_sessionmaker[AsyncSession], *, user_id: str
) -> list[str]:
    """New recovery codes in place of all the old ones, used or not."""
    async with sessions.begin() as db:
        user, factor = await _locked_factor(db, user_id=user_id)
        if factor.confirmed_at is None:
            raise NotFound("you have no active second factor", code="mfa_not_enabled")
        codes = await _replace_codes(db, user_id=user_id)
        db.add(
            _audit(
                actor=user.username, user=user, action="mfa.recovery_codes_regenerated", detail={}
            )
        )
    return codes


async def reset(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, user_id: str
) -> UserRecord:
    """An admin removes a user's factor (lost phone): their org's admin, or a platform admin
    for anyone. Their next login asks for enrolment if the org requires a factor. Audited
    when there was one to remove."""
    async with sessions.begin() as db:
        user = await _resettable(db, actor=actor, user_id=user_id)
        await _reset(db, user=user, actor=actor.username)
    return user


async def reset_by_operator(sessions: async_sessionmaker[AsyncSession], *, username: str) -> bool:
    """`streamspace users reset-mfa`: the way back in for an admin who lost their phone and
    their recovery codes when no other admin can reset them. True if there was a factor."""
    async with sessions.begin() as db:
        user = await db.scalar(select(UserRecord).where(UserRecord.username == username))
        if user is None or user.removed_at is not None:
            raise NotFound(f"no user {username!r}")
        return await _reset(db, user=user, actor="cli")


async def _reset(db: AsyncSession, *, user: UserRecord, actor: str) -> bool:
    factor = await db.get(MfaFactorRecord, user.id, with_for_update=True)
    if factor is None:
        return False
    await _remove(db, user_id=user.id)
    if factor.confirmed_at is None:  # a pending enrolment: nothing was protected by it
        return False
    db.add(_audit(actor=actor, user=user, action="mfa.reset", detail={}))
    return True


async def _resettable(db: AsyncSession, *, actor: Principal, user_id: str) -> UserRecord:
    if not actor.is_platform_admin:
        return await managed_user(db, actor=actor, user_id=user_id)
    user = await db.get(UserRecord, user_id)
    if user is None or user.removed_at is not None:
        raise NotFound("user not found")
    return user


async def _locked_factor(
    db: AsyncSession, *, user_id: str, stale_code: str = "mfa_not_enabled"
) -> tuple[UserRecord, MfaFactorRecord]:
    """The user and their factor, the factor locked: two uses of one code (or recovery code,
    or challenge) cannot both pass."""
    user = await db.get(UserRecord, user_id)
    factor = await db.get(MfaFactorRecord, user_id, with_for_update=True)
    if user is None or factor is None:
        message = "no second factor (it was reset or disabled): start again"
        if stale_code == "mfa_challenge_stale":
            raise Unauthenticated(message, code=stale_code)
        raise NotFound(message, code=stale_code)
    return user, factor


async def _replace_codes(db: AsyncSession, *, user_id: str) -> list[str]:
    await db.execute(delete(MfaRecoveryCodeRecord).where(MfaRecoveryCodeRecord.user_id == user_id))
    codes = totp.new_recovery_codes()
    db.add_all(
        MfaRecoveryCodeRecord(user_id=user_id, code_hash=totp.hash_recovery_code(c)) for c in codes
    )
    return codes


async def _remove(db: AsyncSession, *, user_id: str) -> None:
    await db.execute(delete(MfaRecoveryCodeRecord).where(MfaRecoveryCodeRecord.user_id == user_id))
    await db.execute(delete(MfaFactorRecord).where(MfaFactorRecord.user_id == user_id))


def _audit(
    *, actor: str, user: UserRecord, action: str, detail: Mapping[str, object]
) -> AuditEventRecord:
    return AuditEventRecord(
        org_id=user.org_id,
        actor=actor,
        action=action,
        target=user.id,
        detail={"user": user.username, **detail},
    )
