"""Desktop sessions: create, list, get, terminate, hibernate, resume. Owner-scoped; admins may
list their org's sessions with ?all=true. Another user's session is a 404."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import TypeAdapter

from streamspace.control_plane.api.deps import Ctx, User
from streamspace.control_plane.api.schemas import SessionCreate, SessionRead
from streamspace.control_plane.db.records import SessionRecord

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"])
# The UI's most frequent call: the rows are validated and written as JSON in one pass here,
# instead of a model per row that FastAPI then validates again before serialising.
_SESSION_LIST = TypeAdapter(list[SessionRead])


def _read(session: SessionRecord, owner: str | None = None) -> SessionRead:
    read = SessionRead.model_validate(session)
    return read.model_copy(update={"owner": owner})


@router.post(
    "",
    response_model=SessionRead,
    status_code=202,
    responses={503: {"description": "No agents available"}},
)
async def create_session(body: SessionCreate, principal: User, ctx: Ctx) -> SessionRead:
    session = await ctx.session_service.create(
        principal=principal, template_name=body.template, region=body.region, platform=body.platform
    )
    return _read(session, principal.username)


@router.get("", response_model=list[SessionRead])
async def list_sessions(
    principal: User,
    ctx: Ctx,
    all: bool = False,
    state: str | None = None,
    include_terminated: bool = False,
) -> Response:
    rows = await ctx.session_service.list(
        principal=principal, all_users=all, state=state, include_terminated=include_terminated
    )
    items = _SESSION_LIST.validate_python(rows, from_attributes=True)
    return Response(_SESSION_LIST.dump_json(items), media_type="application/json")


@router.get("/{session_id}", response_model=SessionRead)
async def get_session(session_id: str, principal: User, ctx: Ctx) -> SessionRead:
    return _read(await ctx.session_service.get(principal=principal, session_id=session_id))


@router.delete("/{session_id}", response_model=SessionRead, status_code=202)
async def delete_session(session_id: str, principal: User, ctx: Ctx) -> SessionRead:
    return _read(
        await ctx.session_service.act(
            principal=principal, session_id=session_id, action="terminate"
        )
    )


@router.post("/{session_id}/hibernate", response_model=SessionRead, status_code=202)
async def hibernate_session(session_id: str, principal: User, ctx: Ctx) -> SessionRead:
    return _read(
        await ctx.session_service.act(
            principal=principal, session_id=session_id, action="hibernate"
        )
    )


@router.post("/{session_id}/resume", response_model=SessionRead, status_code=202)
async def resume_session(session_id: str, principal: User, ctx: Ctx) -> SessionRead:
    return _read(
        await ctx.session_service.act(principal=principal, session_id=session_id, action="resume")
    )
