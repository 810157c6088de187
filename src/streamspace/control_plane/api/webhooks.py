"""Webhooks: org admins register HTTPS endpoints for events, read the delivery log, redeliver,
send a test event. Org-scoped; platform admins see every org's."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from streamspace.control_plane.api.deps import Admin, Ctx, LoginOnly
from streamspace.control_plane.api.schemas import (
    WebhookCreate,
    WebhookCreated,
    WebhookDeliveryRead,
    WebhookRead,
    WebhookUpdate,
)
from streamspace.control_plane.services import webhook_admin
from streamspace.control_plane.services.webhooks import EVENT_TYPES

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


@router.get("/event-types", response_model=list[str])
async def event_types(_admin: Admin) -> list[str]:
    return list(EVENT_TYPES)


@router.get("", response_model=list[WebhookRead])
async def list_webhooks(admin: Admin, ctx: Ctx) -> list[WebhookRead]:
    hooks = await webhook_admin.listed(ctx.db, actor=admin)
    return [WebhookRead.model_validate(h) for h in hooks]


@router.post("", response_model=WebhookCreated, status_code=201, dependencies=[LoginOnly])
async def create_webhook(body: WebhookCreate, admin: Admin, ctx: Ctx) -> WebhookCreated:
    """Register an endpoint. The answer carries the signing secret: it is not shown again."""
    hook = await webhook_admin.create(
        ctx.db,
        actor=admin,
        url=body.url,
        event_types=body.event_types,
        secret=body.secret,
        deny_private=ctx.settings.webhook_deny_private_addresses,
    )
    return WebhookCreated.model_validate(hook)


@router.get("/{webhook_id}", response_model=WebhookRead)
async def get_webhook(webhook_id: str, admin: Admin, ctx: Ctx) -> WebhookRead:
    async with ctx.db() as db:
        hook = await webhook_admin.visible(db, actor=admin, webhook_id=webhook_id)
        return WebhookRead.model_validate(hook)


@router.patch("/{webhook_id}", response_model=WebhookRead, dependencies=[LoginOnly])
async def update_webhook(
    webhook_id: str, body: WebhookUpdate, admin: Admin, ctx: Ctx
) -> WebhookRead:
    change = webhook_admin.WebhookChange(
        url=body.url, event_types=body.event_types, enabled=body.enabled, secret=body.secret
    )
    hook = await webhook_admin.update(
        ctx.db,
        actor=admin,
        webhook_id=webhook_id,
        change=change,
        deny_private=ctx.settings.webhook_deny_private_addresses,
    )
    return WebhookRead.model_validate(hook)


@router.delete(
    "/{webhook_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    dependencies=[LoginOnly],
)
async def delete_webhook(webhook_id: str, admin: Admin, ctx: Ctx) -> None:
    await webhook_admin.delete(ctx.db, actor=admin, webhook_id=webhook_id)


@router.get("/{webhook_id}/deliveries", response_model=list[WebhookDeliveryRead])
async def list_deliveries(
    webhook_id: str,
    admin: Admin,
    ctx: Ctx,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[WebhookDeliveryRead]:
    """The delivery log, newest first: state, attempts, the last answer's status and excerpt."""
    rows = await webhook_admin.deliveries(ctx.db, actor=admin, webhook_id=webhook_id, limit=limit)
    return [WebhookDeliveryRead.model_validate(r) for r in rows]


@router.post(
    "/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=WebhookDeliveryRead,
    status_code=202,
)
async def redeliver(
    webhook_id: str, delivery_id: str, admin: Admin, ctx: Ctx
) -> WebhookDeliveryRead:
    """Send it again, same id (receivers that saw it dedupe), with a fresh set of attempts."""
    row = await webhook_admin.redeliver(
        ctx.db, actor=admin, webhook_id=webhook_id, delivery_id=delivery_id
    )
    return WebhookDeliveryRead.model_validate(row)


@router.post("/{webhook_id}/test", response_model=WebhookDeliveryRead, status_code=202)
async def send_test(webhook_id: str, admin: Admin, ctx: Ctx) -> WebhookDeliveryRead:
    """Queue a `webhook.test` event to this endpoint."""
    row = await webhook_admin.send_test(ctx.db, actor=admin, webhook_id=webhook_id)
    return WebhookDeliveryRead.model_validate(row)
