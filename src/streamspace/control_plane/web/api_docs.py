"""The API docs page (`/api/docs`): Swagger UI served from files installed with the package
(the `fastapi-offline` wheel ships its assets), never from a CDN, so an air-gapped install has
its docs and the page keeps to the same Content-Security-Policy as the rest."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).with_name("api_docs")

router = APIRouter(include_in_schema=False)


def swagger_ui_dir() -> Path:
    """Swagger UI's bundle, stylesheet and icon, as the fastapi-offline wheel installs them."""
    return Path(str(files("fastapi_offline") / "static"))


@router.get("/api/docs")
async def api_docs() -> FileResponse:
    return FileResponse(HERE / "index.html", headers={"Cache-Control": "no-cache"})


def mount_api_docs(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/static/api-docs", StaticFiles(directory=HERE), name="api-docs")
    app.mount("/static/swagger-ui", StaticFiles(directory=swagger_ui_dir()), name="swagger-ui")
