"""The delivery rows' life: claimed under a lease by one replica, then delivered, retried with
backoff, or failed. No HTTP here (background/webhooks.py sends)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace.control_plane.db.records import WebhookDeliveryRecord, WebhookRecord
from streamspace.control_plane.services.webhooks import due_filter

EXCERPT_CHARS = 1024  # of a receiver's answer, kept in the delivery log


@dataclass(frozen=True, kw_only=True)
class Claimed:
    """A delivery this replica now holds the lease on, with what it needs to send it."""

    id: str
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    attempt: int
    url: str
    secret: str
    org_id: str


@dataclass(frozen=True, kw_only=True)
class Outcome:
    status: int | None = None  # the receiver's HTTP status, if it answered
    response: str = ""
    error: str = ""

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, kw_only=True)
class Backoff:
    base: float
    cap: float
    max_attempts: int

    def delay(self, attempt: int) -> float:
        """Seconds before the attempt after `attempt` (1-based): doubling, capped, +-20%."""
        return float(min(self.cap, self.base * 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2))


async def claim(
    sessions: async_sessionmaker[AsyncSession], *, owner: str, lease: float, limit: int
) -> list[Claimed]:
    """Take up to `limit` due deliveries for `owner` until `lease` seconds from now. Rows
    another replica is claiming are skipped (PostgreSQL: SKIP LOCKED; SQLite serialises
    writers anyway). A row whose lease ran out was being sent by a replica that died or hung:
    it is claimed again, same id, and the log says so."""
    now = datetime.now(UTC)
    async with sessions.begin() as db:
        rows = (
            await db.execute(
                select(WebhookDeliveryRecord, WebhookRecord)
                .join(WebhookRecord, WebhookRecord.id == WebhookDeliveryRecord.webhook_id)
                .where(due_filter(now), WebhookRecord.enabled.is_(True))
                .order_by(WebhookDeliveryRecord.next_attempt_at)
                .limit(limit)
                .with_for_update(skip_locked=True, of=WebhookDeliveryRecord)
            )
        ).all()
        claimed = []
        for delivery, hook in rows:
            if delivery.lease_owner is not None:
                delivery.last_error = (
                    f"attempt {delivery.attempts} by {delivery.lease_owner} did not finish"
                    " before its lease expired (replica stopped?)"
                )
            delivery.attempts += 1
            delivery.lease_owner = owner
            delivery.lease_expires_at = now + timedelta(seconds=lease)
            claimed.append(_claimed(delivery, hook))
    return claimed


def _claimed(delivery: WebhookDeliveryRecord, hook: WebhookRecord) -> Claimed:
    return Claimed(
        id=delivery.id,
        event_type=delivery.event_type,
        payload=delivery.payload,
        created_at=delivery.created_at,
        attempt=delivery.attempts,
        url=hook.url,
        secret=hook.secret,
        org_id=hook.org_id,
    )


async def finish(
    sessions: async_sessionmaker[AsyncSession],
    *,
    claimed: Claimed,
    owner: str,
    outcome: Outcome,
    backoff: Backoff,
) -> str | None:
    """Record an attempt's outcome if `owner` still holds the lease. Returns the result
    (delivered, retry, failed), or None when the lease was lost meanwhile: the row is
    another replica's now, which sends it again (at least once)."""
    now = datetime.now(UTC)
    async with sessions.begin() as db:
        row = await db.get(WebhookDeliveryRecord, claimed.id, with_for_update=True)
        if row is None or row.lease_owner != owner or row.state != "pending":
            return None
        row.lease_owner, row.lease_expires_at = None, None
        row.last_status = outcome.status
        row.last_response = outcome.response[:EXCERPT_CHARS]
        if outcome.error:  # else the last error stays: why it took more than one attempt
            row.last_error = outcome.error[:EXCERPT_CHARS]
        if outcome.delivered:
            row.state, row.delivered_at = "delivered", now
        elif row.attempts >= backoff.max_attempts:
            row.state = "failed"
        else:
            row.next_attempt_at = now + timedelta(seconds=backoff.delay(row.attempts))
            return "retry"
        return row.state


async def purge(sessions: async_sessionmaker[AsyncSession], *, older_than: float) -> int:
    """Delete delivered and failed deliveries created more than `older_than` seconds ago (the
    log's retention); pending ones stay whatever their age."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    async with sessions.begin() as db:
        result = await db.execute(
            delete(WebhookDeliveryRecord).where(
                WebhookDeliveryRecord.state.in_(("delivered", "failed")),
                WebhookDeliveryRecord.created_at < cutoff,
            )
        )
    return int(getattr(result, "rowcount", 0) or 0)
