"""Payload schemas for each message type, and the command actions agents execute."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Action = Literal["start_session", "stop_session", "hibernate_session", "wake_session"]
ACTIONS: tuple[str, ...] = ("start_session", "stop_session", "hibernate_session", "wake_session")


class _Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Capacity(_Payload):
    max_sessions: int = Field(10, ge=0, alias="maxSessions")
    cpu: str | None = None
    memory: str | None = None


class CommandPayload(_Payload):
    command_id: str = Field(..., alias="commandId", min_length=1, max_length=64)
    action: Action
    session_id: str | None = Field(None, alias="sessionId")
    spec: dict[str, Any] = Field(default_factory=dict)


class HeartbeatPayload(_Payload):
    active_sessions: int = Field(0, ge=0, alias="activeSessions")
    capacity: Capacity | None = None
    draining: bool = False


class AckPayload(_Payload):
    command_id: str = Field(..., alias="commandId", min_length=1, max_length=64)


class CompletePayload(AckPayload):
    result: dict[str, Any] = Field(default_factory=dict)


class FailedPayload(AckPayload):
    error: str = Field("", max_length=4000)


class StatusPayload(_Payload):
    session_id: str = Field(..., alias="sessionId", min_length=1, max_length=64)
    state: Literal["running", "hibernated", "missing", "failed", "starting"]
    detail: str = Field("", max_length=4000)
    vnc_host: str | None = Field(None, alias="vncHost")
    vnc_port: int | None = Field(None, alias="vncPort")
    # a session object from before installation ids, owned by agent id alone: if this
    # installation never had the session, it may be another's, and is left alone
    adopted: bool = False


class PongPayload(_Payload):
    """Answers a `ping`; echoes the ping envelope's id so concurrent pings are told apart."""

    ping_id: str | None = Field(None, alias="pingId", max_length=64)


class WelcomePayload(_Payload):
    """The control plane's first frame. `installationId` came later: a control plane from
    before it sends none, and an agent then keeps to its own agent id alone."""

    pod: str = ""
    heartbeat_interval: float | None = Field(None, alias="heartbeatInterval")
    installation_id: str | None = Field(None, alias="installationId", pattern=r"^[0-9a-f]{8,64}$")


class ShutdownPayload(_Payload):
    reason: str = ""
