"""Agent REST endpoints: registration (agent key), and the admin view and actions."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from streamspace.control_plane.api.deps import Ctx, PlatformAdmin
from streamspace.control_plane.api.schemas import StrictBody
from streamspace.control_plane.context import AppContext
from streamspace.control_plane.db.records import AgentRecord
from streamspace.control_plane.services.scheduler import agent_loads
from streamspace.errors import NotFound, StreamSpaceError, Unavailable

router = APIRouter(tags=["agents"])


class CapacityIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    maxSessions: int = Field(10, ge=0, le=100_000)
    cpu: str | None = Field(None, max_length=32)
    memory: str | None = Field(None, max_length=32)


class AgentRegistration(StrictBody):
    agentId: str = Field(..., min_length=3, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    platform: Literal["kubernetes", "docker", "memory"]
    region: str | None = Field(None, min_length=1, max_length=50)
    capacity: CapacityIn = Field(default_factory=CapacityIn)
    metadata: dict[str, Any] = Field(default_factory=dict)


class AgentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    platform: str
    region: str
    approval_status: str
    status: str
    connected: bool = False
    pod_name: str | None
    epoch: int
    draining: bool
    max_sessions: int
    active_sessions: int
    reported_sessions: int = 0
    capacity: dict[str, Any]
    last_heartbeat: datetime | None


class AgentKey(BaseModel):
    agentId: str
    apiKey: str
    message: str


class PingRead(BaseModel):
    agentId: str
    route: Literal["local", "cross_pod"]
    replica: str = Field(description="the replica that served this request")
    rttMs: float = Field(description="request received -> agent's pong back on this replica")


class ReplicaRead(BaseModel):
    pod_name: str
    internal_url: str
    version: str
    alive: bool
    connected_agents: int


@router.post("/api/v1/agents/register", responses={202: {"description": "pending approval"}})
async def register(
    body: AgentRegistration, ctx: Ctx, x_agent_api_key: Annotated[str, Header()] = ""
) -> JSONResponse:
    status, answer = await ctx.agent_service.register(
        key=x_agent_api_key, agent_id=body.agentId, fields=body.model_dump()
    )
    return JSONResponse(answer, status_code=status)


@router.get("/api/v1/agents", response_model=list[AgentRead])
async def list_agents(admin: PlatformAdmin, ctx: Ctx) -> list[AgentRead]:
    async with ctx.db() as db:
        agents = (await db.scalars(select(AgentRecord).order_by(AgentRecord.id))).all()
        loads = await agent_loads(db)
    return [
        AgentRead.model_validate(a).model_copy(
            update={
                "connected": a.status == "online",
                "active_sessions": loads.get(a.id, 0),
                "reported_sessions": a.active_sessions,
            }
        )
        for a in agents
    ]


@router.post("/api/v1/admin/agents/{agent_id}/approve", response_model=AgentRead)
async def approve(agent_id: str, admin: PlatformAdmin, ctx: Ctx) -> AgentRead:
    return AgentRead.model_validate(
        await ctx.agent_service.approve(agent_id=agent_id, admin=admin.username)
    )


@router.post("/api/v1/admin/agents/{agent_id}/reject", response_model=AgentRead)
async def reject(agent_id: str, admin: PlatformAdmin, ctx: Ctx) -> AgentRead:
    return AgentRead.model_validate(
        await ctx.agent_service.reject(agent_id=agent_id, admin=admin.username)
    )


@router.post("/api/v1/admin/agents/{agent_id}/rotate-key", response_model=AgentKey)
async def rotate_key(agent_id: str, admin: PlatformAdmin, ctx: Ctx) -> AgentKey:
    key = await ctx.agent_service.rotate_key(agent_id=agent_id, actor=admin.username)
    return AgentKey(
        agentId=agent_id,
        apiKey=key,
        message="the old key stopped working; this key is shown only once",
    )


async def _ping(ctx: AppContext, agent_id: str, wait: float) -> PingRead:
    started = time.perf_counter()
    try:
        route = await ctx.hub.ping(agent_id, wait=wait)
    except Unavailable:
        # Only on failure: is it an agent we do not know (404) or one not connected (503)?
        async with ctx.db() as db:
            if await db.get(AgentRecord, agent_id) is None:
                raise NotFound(f"agent {agent_id} not found") from None
        raise
    return PingRead(
        agentId=agent_id,
        route=route,
        replica=ctx.settings.pod_name,
        rttMs=round((time.perf_counter() - started) * 1000, 3),
    )


WaitParam = Annotated[
    float, Query(alias="timeout", gt=0, le=30, description="seconds to wait for the pong")
]


@router.post(
    "/api/v1/admin/agents/{agent_id}/ping",
    response_model=PingRead,
    responses={
        404: {"description": "unknown agent"},
        503: {"description": "agent not connected"},
        504: {"description": "no pong"},
    },
)
async def ping(agent_id: str, admin: PlatformAdmin, ctx: Ctx, wait: WaitParam = 5.0) -> PingRead:
    """Round-trip a `ping` through the hub to the agent, on whichever replica holds it."""
    return await _ping(ctx, agent_id, wait)


class PingMany(StrictBody):
    agents: list[str] = Field(..., min_length=1, max_length=1000)


class PingFailure(BaseModel):
    agentId: str
    error: dict[str, str] = Field(description="{code, message}, as in an error response")


class PingManyRead(BaseModel):
    results: list[PingRead | PingFailure]


@router.post("/api/v1/admin/agents/ping", response_model=PingManyRead)
async def ping_many(
    body: PingMany, admin: PlatformAdmin, ctx: Ctx, wait: WaitParam = 5.0
) -> PingManyRead:
    """Ping many agents at once (a fleet check): each ping is its own command, routed to
    whichever replica holds that agent; one answer per agent, in the order asked."""

    async def one(agent_id: str) -> PingRead | PingFailure:
        try:
            return await _ping(ctx, agent_id, wait)
        except StreamSpaceError as exc:
            return PingFailure(agentId=agent_id, error={"code": exc.code, "message": exc.message})

    return PingManyRead(results=list(await asyncio.gather(*(one(a) for a in body.agents))))


@router.get("/api/v1/pods", response_model=list[ReplicaRead])
async def list_pods(admin: PlatformAdmin, ctx: Ctx) -> list[ReplicaRead]:
    replicas = await ctx.hub.replicas.known()
    async with ctx.db() as db:
        rows = (
            (await db.execute(select(AgentRecord.pod_name).where(AgentRecord.status == "online")))
            .scalars()
            .all()
        )
    counts = {pod: rows.count(pod) for pod in set(rows)}
    return [
        ReplicaRead(
            pod_name=name,
            internal_url=r.internal_url,
            version=r.version,
            alive=r.alive,
            connected_agents=counts.get(name, 0),
        )
        for name, r in sorted(replicas.items())
    ]
