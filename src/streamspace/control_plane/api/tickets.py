"""`POST /api/v1/events/ticket`: a short-lived ticket that opens the caller's events socket, so
the login token never travels in a URL (where proxies and access logs keep it)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from streamspace.control_plane.api.deps import Ctx, Reader
from streamspace.control_plane.auth.tokens import EVENTS_TICKET, ticket

router = APIRouter(prefix="/api/v1/events", tags=["events"])
EVENTS_TICKET_TTL = 60.0


class EventsTicket(BaseModel):
    ticket: str
    url: str
    expires_in: int


@router.post("/ticket", response_model=EventsTicket)
async def events_ticket(principal: Reader, ctx: Ctx) -> EventsTicket:
    """Open `url` within `expires_in` seconds; the socket then lives as long as the login (or
    API token: a read-only one may ask for this ticket too, the socket only reads)."""
    value = ticket(ctx.tokens, principal=principal, purpose=EVENTS_TICKET, ttl=EVENTS_TICKET_TTL)
    return EventsTicket(
        ticket=value,
        url=f"/api/v1/ws/events?ticket={value}",
        expires_in=int(EVENTS_TICKET_TTL),
    )
