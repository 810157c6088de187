"""ASGI plumbing under the app, knowing nothing of the product: the WebSocket server, the
HTTP middleware and the access log."""
