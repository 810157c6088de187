"""Webhook events into the outbox: a delivery row per subscribed webhook, added in the same
transaction as the change that caused the event. Sending them is background/webhooks.py's;
the endpoints an org registers are services/webhook_admin.py's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, event, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, UOWTransaction, attributes

from streamspace.control_plane.db.engine import RecordSession
from streamspace.control_plane.db.records import (
    AgentRecord,
    SessionRecord,
    WebhookDeliveryRecord,
    WebhookRecord,
)

SESSION_STARTED = "session.started"
SESSION_ENDED = "session.ended"
SESSION_FAILED = "session.failed"
AGENT_OFFLINE = "agent.offline"
QUOTA_REACHED = "quota.reached"
TEST_EVENT = "webhook.test"  # sent by "send test event" only; nobody subscribes to it
EVENT_TYPES = (SESSION_STARTED, SESSION_ENDED, SESSION_FAILED, AGENT_OFFLINE, QUOTA_REACHED)
# Agents are the platform's, not an org's: only platform admins subscribe to their events,
# and such a subscription hears about every agent.
PLATFORM_EVENTS = frozenset({AGENT_OFFLINE})
_SESSION_EVENTS = {"terminated": SESSION_ENDED, "failed": SESSION_FAILED}
_BEFORE_RUNNING = frozenset({"pending", "starting"})


def add_deliveries(
    db: Session, *, org_id: str | None, event_type: str, payload: dict[str, Any]
) -> list[WebhookDeliveryRecord]:
    """Add a pending delivery of the event to every enabled webhook subscribed to it: the
    org's (`org_id`), or any org's for a platform event. Committed with `db`'s transaction."""
    scope: ColumnElement[bool] = WebhookRecord.enabled.is_(True)
    if event_type not in PLATFORM_EVENTS:
        scope = scope & (WebhookRecord.org_id == org_id)
    with db.no_autoflush:
        hooks = db.scalars(select(WebhookRecord).where(scope)).all()
    rows = [
        WebhookDeliveryRecord(webhook_id=hook.id, event_type=event_type, payload=payload)
        for hook in hooks
        if event_type in hook.event_types
    ]
    db.add_all(rows)
    return rows


async def enqueue(
    db: AsyncSession, *, org_id: str | None, event_type: str, payload: dict[str, Any]
) -> int:
    """Queue `event_type` for the org's webhooks inside the caller's transaction (the outbox):
    sent only if that transaction commits, then at least once. Returns how many deliveries
    were queued. E.g. `await enqueue(db, org_id=org, event_type=QUOTA_REACHED, payload={...})`
    in the quota refusal's transaction."""
    if event_type not in (*EVENT_TYPES, TEST_EVENT):
        raise ValueError(f"unknown webhook event type {event_type!r}")
    rows = await db.run_sync(
        lambda sync: add_deliveries(sync, org_id=org_id, event_type=event_type, payload=payload)
    )
    return len(rows)


async def enqueue_unless_recent(
    db: AsyncSession,
    *,
    org_id: str,
    event_type: str,
    payload: dict[str, Any],
    quiet_for: float,
) -> int:
    """`enqueue`, unless the same event with the same payload was queued for the org within
    `quiet_for` seconds: a refused client retries, so quota.reached goes once per quota and
    window, not once per refused request."""
    if quiet_for > 0:
        since = datetime.now(UTC) - timedelta(seconds=quiet_for)
        recent = await db.scalars(
            select(WebhookDeliveryRecord.payload)
            .join(WebhookRecord, WebhookRecord.id == WebhookDeliveryRecord.webhook_id)
            .where(
                WebhookRecord.org_id == org_id,
                WebhookDeliveryRecord.event_type == event_type,
                WebhookDeliveryRecord.created_at >= since,
            )
        )
        if payload in recent.all():
            return 0
    return await enqueue(db, org_id=org_id, event_type=event_type, payload=payload)


def _old_value(record: object, name: str) -> Any:
    history = attributes.get_history(record, name)
    return history.deleted[0] if history.deleted else None


def session_payload(session: SessionRecord, *, previous: str | None) -> dict[str, Any]:
    return {
        "session": {
            "id": session.id,
            "org_id": session.org_id,
            "user_id": session.user_id,
            "template": session.template_name,
            "agent_id": session.agent_id,
            "state": session.state,
            "previous_state": previous,
            "reason": session.state_reason,
            "changed_at": _iso(session.state_changed_at),
        }
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _session_event(session: SessionRecord) -> str | None:
    previous = _old_value(session, "state")
    if previous is None or previous == session.state:
        return None
    if session.state == "running":
        # started = running for the first time; waking up again is not a start
        return SESSION_STARTED if previous in _BEFORE_RUNNING else None
    return _SESSION_EVENTS.get(session.state)


def _events(db: Session) -> list[tuple[str | None, str, dict[str, Any]]]:
    found: list[tuple[str | None, str, dict[str, Any]]] = []
    for record in db.dirty:
        if isinstance(record, SessionRecord):
            kind = _session_event(record)
            if kind is not None:
                previous = _old_value(record, "state")
                found.append((record.org_id, kind, session_payload(record, previous=previous)))
        elif (
            isinstance(record, AgentRecord)
            and record.status == "offline"
            and _old_value(record, "status") == "online"
        ):
            found.append((None, AGENT_OFFLINE, agent_payload(record)))
    return found


def agent_payload(agent: AgentRecord) -> dict[str, Any]:
    return {
        "agent": {
            "id": agent.id,
            "platform": agent.platform,
            "region": agent.region,
            "status": agent.status,
            "last_heartbeat": _iso(agent.last_heartbeat),
        }
    }


@event.listens_for(RecordSession, "before_flush")
def _outbox(db: Session, _flush: UOWTransaction, _instances: object) -> None:
    """Every session state change and agent going offline, wherever it is made, queues its
    event in the same flush (so the same transaction) as the change itself."""
    for org_id, kind, payload in _events(db):
        add_deliveries(db, org_id=org_id, event_type=kind, payload=payload)


def due_filter(now: datetime) -> ColumnElement[bool]:
    return (
        (WebhookDeliveryRecord.state == "pending")
        & (WebhookDeliveryRecord.next_attempt_at <= now)
        & or_(
            WebhookDeliveryRecord.lease_expires_at.is_(None),
            WebhookDeliveryRecord.lease_expires_at < now,
        )
    )
