"""Security headers on every HTTP response: a Content-Security-Policy that allows no inline
script, no framing, `nosniff`, no referrer, and HSTS over HTTPS. A response that sets one of
these itself (the viewer page, which the UI frames) keeps its own. Pure ASGI, so a streamed body
passes through untouched."""

from __future__ import annotations

from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Everything from this origin only: scripts and styles from files (no inline code, no eval),
# images also as data: URLs (noVNC's cursor, Swagger UI's icons), WebSockets to this origin
# ('self' covers ws: and wss:), frames of this origin only (the UI's session viewer).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; frame-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The session viewer page: the same, but the UI of this origin may frame it.
VIEWER_CSP = CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")
# The web UI: the same, but with inline styles. Mantine, its component kit, writes the theme's
# CSS variables and responsive style props into <style> elements at run time. Scripts stay
# files only; deploy/nginx sends this policy with the UI it serves.
UI_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
HSTS = b"max-age=31536000"
HeaderList = list[tuple[bytes, bytes]]
BASE: HeaderList = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeadersMiddleware:
    """Adds BASE (and HSTS, as `hsts` says) to each HTTP response that lacks them. `hsts`:
    "auto" when the request's scheme is https (uvicorn's own TLS, or X-Forwarded-Proto from a
    proxy it trusts), "always", or "off"."""

    def __init__(self, app: ASGIApp, *, hsts: Literal["auto", "always", "off"]) -> None:
        self.app, self.hsts = app, hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = BASE
        if self.hsts == "always" or (self.hsts == "auto" and scope.get("scheme") == "https"):
            extra = [*BASE, (b"strict-transport-security", HSTS)]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = with_defaults(list(message.get("headers", ())), extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def with_defaults(headers: HeaderList, defaults: HeaderList) -> HeaderList:
    present = {name.lower() for name, _ in headers}
    headers.extend(item for item in defaults if item[0] not in present)
    return headers
