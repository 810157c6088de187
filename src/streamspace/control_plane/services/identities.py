"""Users whose identity lives elsewhere (an OpenID Connect provider, an LDAP directory): found
by their (source, subject), else created on their first sign-in (just in time) in the mapped
org with the mapped role; role, e-mail and display name follow the source at every sign-in.
Owns its transaction. Proving who the person is stays with the callers (auth/oidc, auth/ldap)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import AuditEventRecord, OrgRecord, UserRecord
from streamspace.control_plane.services.users import USERNAME_RE
from streamspace.errors import Conflict, PermissionDenied, Unauthenticated

# Never a valid argon2 hash: no password verifies against it (auth/passwords.py), so a user
# created here has no local password.
NO_PASSWORD = "!external"


@dataclass(frozen=True, kw_only=True)
class ExternalIdentity:
    """What the source vouched for: `subject` is stable there, the rest may change."""

    source: str  # "oidc" or "ldap"
    subject: str
    username: str
    email: str | None = None
    display_name: str | None = None
    is_admin: bool = False
    org: str | None = None  # the org's name, when the source names one


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    user: UserRecord
    provisioned: bool
    role_changed: bool  # the caller refreshes the user's other logins' cached role


def normalise_username(value: str) -> str:
    username = value.strip().lower()
    if not USERNAME_RE.match(username):
        raise PermissionDenied(
            f"the identity provider's username {value!r} is not a valid StreamSpace username"
            " (2-63 characters: lowercase letters, digits, . _ -)",
            code="sso_invalid_username",
        )
    return username


async def sign_in(
    sessions: async_sessionmaker[AsyncSession], *, identity: ExternalIdentity, default_org: str
) -> SignedIn:
    """The user for `identity`, created when first seen; refused when disabled or removed,
    and when the name belongs to another user (a local one, or another source's): nobody
    takes over an account by naming themselves after it at their provider."""
    try:
        async with sessions.begin() as db:
            user = await db.scalar(
                select(UserRecord)
                .where(
                    UserRecord.auth_source == identity.source,
                    UserRecord.external_subject == identity.subject,
                )
                .with_for_update()
            )
            if user is None:
                user = await _provision(db, identity=identity, default_org=default_org)
                return SignedIn(user=user, provisioned=True, role_changed=False)
            return SignedIn(user=user, provisioned=False, role_changed=_update(db, user, identity))
    except IntegrityError as exc:  # the same person's first sign-in twice at once
        raise Conflict(
            f"user {identity.username!r} was created at the same moment; sign in again",
            code="user_exists",
        ) from exc


async def _provision(
    db: AsyncSession, *, identity: ExternalIdentity, default_org: str
) -> UserRecord:
    taken = await db.scalar(select(UserRecord).where(UserRecord.username == identity.username))
    if taken is not None:
        raise Conflict(
            f"the username {identity.username!r} already belongs to a"
            f" {'removed ' if taken.removed_at else ''}{taken.auth_source} account; an admin"
            " must rename or remove it before it can sign in through single sign-on",
            code="sso_username_taken",
        )
    org_name = identity.org or default_org
    org = await db.scalar(select(OrgRecord).where(OrgRecord.name == org_name))
    if org is None:
        raise PermissionDenied(
            f"org {org_name!r} does not exist: an admin must create it first",
            code="sso_unknown_org",
        )
    user = UserRecord(
        username=identity.username,
        password_hash=NO_PASSWORD,
        role=_role(identity),
        org_id=org.id,
        auth_source=identity.source,
        external_subject=identity.subject,
        email=identity.email,
        display_name=identity.display_name,
    )
    db.add(user)
    await db.flush()
    db.add(
        AuditEventRecord(
            org_id=org.id,
            actor=identity.username,
            action="user.provisioned",
            target=user.id,
            detail={"user": user.username, "source": identity.source, "role": user.role},
        )
    )
    return user


def _update(db: AsyncSession, user: UserRecord, identity: ExternalIdentity) -> bool:
    """Refuse a disabled or removed user; bring role, e-mail and name up to date (a demoted
    admin stops being a platform admin too). True when the role changed."""
    if user.disabled or user.removed_at is not None:
        raise Unauthenticated("this account is disabled", code="account_disabled")
    role = _role(identity)
    changed = role != user.role
    if changed:
        db.add(
            AuditEventRecord(
                org_id=user.org_id,
                actor=identity.source,
                action="user.updated",
                target=user.id,
                detail={"user": user.username, "role": [user.role, role]},
            )
        )
        user.role = role
        user.platform_admin = user.platform_admin and role == "admin"
    user.email, user.display_name = identity.email, identity.display_name
    return changed


def _role(identity: ExternalIdentity) -> str:
    return "admin" if identity.is_admin else "user"
