"""The web UI's built assets (ui/dist), served as a single-page app: every client-side route
(/sessions/abc, /admin/agents, ...) answers with index.html, hashed assets are cached for a
year, index.html never, all with the UI's Content-Security-Policy. The API, the viewer page
and the WebSockets are routes of their own and are matched before this mount."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from streamspace.control_plane.asgi.headers import UI_CSP

IMMUTABLE = "public, max-age=31536000, immutable"
RESERVED = ("api/", "static/", "ws/")


class SinglePageApp(StaticFiles):
    def __init__(self, *, directory: Path) -> None:
        super().__init__(directory=directory, html=True)
        self.index = directory / "index.html"

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            response = await super().get_response(path, scope)
        except HTTPException as exc:
            if exc.status_code != 404 or not self._is_client_route(path):
                raise
            response = FileResponse(self.index)
        response.headers["Content-Security-Policy"] = UI_CSP
        if path.startswith("assets/") and response.status_code == 200:
            response.headers["Cache-Control"] = IMMUTABLE
        elif response.media_type == "text/html" or path in ("", ".", "index.html"):
            response.headers["Cache-Control"] = "no-cache"
        return response

    @staticmethod
    def _is_client_route(path: str) -> bool:
        """A path the UI's router handles: not an API path and not a missing file."""
        last = path.rsplit("/", 1)[-1]
        return not path.startswith(RESERVED) and "." not in last


def mount_ui(app: FastAPI, directory: Path) -> None:
    if (directory / "index.html").is_file():
        app.mount("/", SinglePageApp(directory=directory), name="ui")
