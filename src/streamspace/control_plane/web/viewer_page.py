"""The session viewer page (`/sessions/{id}/view`) and its static files, including noVNC
from the npm package installed in web/viewer (never a CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from streamspace.control_plane.asgi.headers import VIEWER_CSP

HERE = Path(__file__).with_name("viewer")
NOVNC = Path(__file__).resolve().parents[4] / "web" / "viewer" / "node_modules" / "@novnc" / "novnc"

router = APIRouter(include_in_schema=False)


@router.get("/sessions/{session_id}/view", response_model=None)
async def view(session_id: str) -> FileResponse | JSONResponse:
    if not (NOVNC / "core" / "rfb.js").exists():
        return JSONResponse(
            {
                "error": {
                    "code": "viewer_not_installed",
                    "message": "noVNC is not installed: run `make setup` (npm install in web/viewer)",
                }
            },
            status_code=503,
        )
    # the one page the UI frames (the session page embeds it): framing by this origin only
    headers = {"Cache-Control": "no-cache", "Content-Security-Policy": VIEWER_CSP}
    return FileResponse(HERE / "view.html", headers=headers)


def mount_viewer(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static/viewer", StaticFiles(directory=HERE), name="viewer")
    if NOVNC.is_dir():
        app.mount("/static/novnc", StaticFiles(directory=NOVNC), name="novnc")
