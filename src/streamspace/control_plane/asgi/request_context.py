"""What the current HTTP request is, for code far below the edges: its id (X-Request-ID) and
its client's address (the real client when a TRUSTED_PROXIES proxy forwarded it). Set by
RequestMiddleware; outside a request both read as empty. No Starlette here, so the database
layer may read it (the audit trail stamps every event with both)."""

from __future__ import annotations

import contextvars

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
client_address_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "client_address", default=""
)


def request_id() -> str:
    """The current request's id, or "" outside a request."""
    rid = request_id_var.get()
    return "" if rid == "-" else rid


def client_address() -> str:
    """The current request's client address, or "" outside a request."""
    return client_address_var.get()
