"""Webhook endpoints an org's admins manage: register (HTTPS only), change, remove, look at the
delivery log, redeliver, send a test event. Org admins see their org's only; platform admins
any org's, and only they may subscribe to platform events (agents)."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.auth.principal import Principal
from streamspace.control_plane.db.records import (
    AuditEventRecord,
    WebhookDeliveryRecord,
    WebhookRecord,
)
from streamspace.control_plane.services.webhooks import (
    EVENT_TYPES,
    PLATFORM_EVENTS,
    TEST_EVENT,
)
from streamspace.errors import NotFound, PermissionDenied, ValidationFailed

SECRET_PREFIX = "whsec_"


@dataclass(frozen=True, kw_only=True)
class WebhookChange:
    url: str | None = None
    event_types: Sequence[str] | None = None
    enabled: bool | None = None
    secret: str | None = None


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def check_url(url: str, *, deny_private: bool) -> str:
    """HTTPS only, no credentials in it, and (when private addresses are denied) not a
    literal private address. Names are checked again at every delivery, after resolution."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValidationFailed(f"not a URL: {exc}", code="webhook_url_invalid") from None
    if parts.scheme != "https":
        raise ValidationFailed(
            "webhook URLs must be https:// (deliveries carry org data and are signed, not"
            " encrypted); for a private receiver, trust its CA with WEBHOOK_CA_BUNDLE",
            code="webhook_url_not_https",
        )
    if not parts.hostname or parts.username or parts.password or parts.fragment:
        raise ValidationFailed(
            "a webhook URL needs a host, and no user, password or #fragment",
            code="webhook_url_invalid",
        )
    if deny_private and _private_host(parts.hostname):
        raise ValidationFailed(
            f"{parts.hostname} is a private or reserved address; this installation denies"
            " them (WEBHOOK_DENY_PRIVATE_ADDRESSES)",
            code="webhook_url_denied",
        )
    return url


def _private_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not ip.is_global


def check_events(event_types: Sequence[str], *, actor: Principal) -> list[str]:
    chosen = sorted(set(event_types))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown or not chosen:
        raise ValidationFailed(
            f"event types must be some of {', '.join(EVENT_TYPES)}", code="webhook_event_unknown"
        )
    if not actor.is_platform_admin and PLATFORM_EVENTS.intersection(chosen):
        raise PermissionDenied(
            "agent events are the platform's: only platform admins subscribe to them",
            code="platform_admin_required",
        )
    return chosen


def _audit(
    hook: WebhookRecord, *, actor: Principal, action: str, secret_changed: bool = False
) -> AuditEventRecord:
    detail = {"url": hook.url, "events": hook.event_types, "enabled": hook.enabled}
    return AuditEventRecord(
        org_id=hook.org_id,
        actor=actor.username,
        action=action,
        target=hook.id,
        detail={**detail, "secret_changed": True} if secret_changed else detail,
    )


async def create(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: Principal,
    url: str,
    event_types: Sequence[str],
    secret: str | None,
    deny_private: bool,
) -> WebhookRecord:
    hook = WebhookRecord(
        org_id=actor.org_id,
        url=check_url(url, deny_private=deny_private),
        event_types=check_events(event_types, actor=actor),
        secret=secret or new_secret(),
        enabled=True,
        created_by=actor.username,
    )
    async with sessions.begin() as db:
        db.add(hook)
        await db.flush()
        db.add(_audit(hook, actor=actor, action="webhook.created"))
    return hook


async def visible(db: AsyncSession, *, actor: Principal, webhook_id: str) -> WebhookRecord:
    """The webhook if the actor manages it; another org's is simply not found."""
    hook = await db.get(WebhookRecord, webhook_id)
    if hook is None or (hook.org_id != actor.org_id and not actor.is_platform_admin):
        raise NotFound("webhook not found")
    return hook


async def listed(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal
) -> Sequence[WebhookRecord]:
    query = select(WebhookRecord).order_by(WebhookRecord.created_at)
    if not actor.is_platform_admin:
        query = query.where(WebhookRecord.org_id == actor.org_id)
    async with sessions() as db:
        return (await db.scalars(query)).all()


async def update(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: Principal,
    webhook_id: str,
    change: WebhookChange,
    deny_private: bool,
) -> WebhookRecord:
    async with sessions.begin() as db:
        hook = await visible(db, actor=actor, webhook_id=webhook_id)
        if change.url is not None:
            hook.url = check_url(change.url, deny_private=deny_private)
        if change.event_types is not None:
            hook.event_types = check_events(change.event_types, actor=actor)
        if change.enabled is not None:
            hook.enabled = change.enabled
        if change.secret is not None:
            hook.secret = change.secret
        db.add(
            _audit(
                hook,
                actor=actor,
                action="webhook.updated",
                secret_changed=change.secret is not None,
            )
        )
    return hook


async def delete(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, webhook_id: str
) -> None:
    """Remove the webhook and its delivery log; pending deliveries are not sent."""
    async with sessions.begin() as db:
        hook = await visible(db, actor=actor, webhook_id=webhook_id)
        db.add(_audit(hook, actor=actor, action="webhook.deleted"))
        await db.delete(hook)


async def deliveries(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, webhook_id: str, limit: int
) -> Sequence[WebhookDeliveryRecord]:
    async with sessions() as db:
        await visible(db, actor=actor, webhook_id=webhook_id)
        return (
            await db.scalars(
                select(WebhookDeliveryRecord)
                .where(WebhookDeliveryRecord.webhook_id == webhook_id)
                .order_by(WebhookDeliveryRecord.created_at.desc(), WebhookDeliveryRecord.id)
                .limit(limit)
            )
        ).all()


async def redeliver(
    sessions: async_sessionmaker[AsyncSession],
    *,
    actor: Principal,
    webhook_id: str,
    delivery_id: str,
) -> WebhookDeliveryRecord:
    """Send a delivered or failed delivery again, same id, with a fresh set of attempts."""
    async with sessions.begin() as db:
        await visible(db, actor=actor, webhook_id=webhook_id)
        row = await db.get(WebhookDeliveryRecord, delivery_id, with_for_update=True)
        if row is None or row.webhook_id != webhook_id:
            raise NotFound("delivery not found")
        if row.state != "pending":
            row.state, row.attempts, row.next_attempt_at = "pending", 0, datetime.now(UTC)
            row.delivered_at = None
        db.add(
            AuditEventRecord(
                org_id=actor.org_id,
                actor=actor.username,
                action="webhook.redelivered",
                target=webhook_id,
                detail={"delivery": delivery_id},
            )
        )
    return row


async def send_test(
    sessions: async_sessionmaker[AsyncSession], *, actor: Principal, webhook_id: str
) -> WebhookDeliveryRecord:
    """Queue a `webhook.test` event to this webhook only, whatever it subscribes to."""
    async with sessions.begin() as db:
        hook = await visible(db, actor=actor, webhook_id=webhook_id)
        row = WebhookDeliveryRecord(
            webhook_id=hook.id,
            event_type=TEST_EVENT,
            payload={"message": f"test event sent by {actor.username}"},
        )
        db.add(row)
    return row
