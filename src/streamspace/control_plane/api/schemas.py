"""API models (request and response bodies) for the REST routers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from streamspace.control_plane.services.states import SessionState

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"


def storable_text(value: Any) -> bool:
    """False if any string in `value` (nested keys included) has a NUL or a lone surrogate:
    PostgreSQL refuses NUL in text and neither database driver can encode a surrogate."""
    if isinstance(value, str):
        return "\x00" not in value and (value.isascii() or _encodes(value))
    if isinstance(value, dict):
        return all(storable_text(k) and storable_text(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return all(storable_text(v) for v in value)
    return True


def _encodes(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


class StrictBody(BaseModel):
    """A request body: unknown fields and unstorable text are a 422, never a database error."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        if not storable_text(data):
            raise ValueError("text must not contain NUL characters or unpaired surrogates")
        return data


class LoginRequest(StrictBody):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=1024)


class PasswordChange(StrictBody):
    current_password: str = Field(..., min_length=1, max_length=1024)
    new_password: str = Field(..., min_length=8, max_length=1024)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


# Every role a user can hold: what UserCreate and UserUpdate accept is all a user record has.
Role = Literal["admin", "user"]


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    username: str
    role: Role
    org_id: str
    disabled: bool
    platform_admin: bool = Field(
        False, description="an admin who also runs the platform: agents, replicas, orgs"
    )
    mfa_enabled: bool = Field(False, description="has an active TOTP second factor")


class UserCreate(StrictBody):
    username: str = Field(..., min_length=2, max_length=63)
    password: str = Field(..., min_length=8, max_length=1024)
    role: Role = "user"
    platform_admin: bool = Field(
        False, description="only a platform admin may give it; needs role admin"
    )


class UserUpdate(StrictBody):
    disabled: bool | None = None
    role: Role | None = None
    platform_admin: bool | None = Field(
        None, description="only a platform admin may change it; needs role admin"
    )


class UserRemoved(BaseModel):
    id: str
    username: str
    sessions_not_terminated: list[str] = Field(
        default_factory=list,
        description="sessions that could not be ended now (their agent unreachable): end them"
        " later with DELETE /api/v1/sessions/{id}",
    )


class OrgAdmin(StrictBody):
    username: str = Field(..., min_length=2, max_length=63)
    password: str = Field(..., min_length=8, max_length=1024)


class OrgCreate(StrictBody):
    name: str = Field(..., min_length=2, max_length=63, pattern=r"^[a-z0-9][a-z0-9._-]*$")
    admin: OrgAdmin = Field(..., description="the org's first admin, created with it")


class OrgRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    created_at: datetime
    users: int = Field(0, description="users in the org, removed ones not counted")
    mfa_required: bool = Field(False, description="its local users must have a second factor")


class OrgCreated(OrgRead):
    admin: UserRead


EGRESS_DOC = (
    "Whether the template's sessions may connect to the internet; they never reach the "
    "agent's host or private addresses either way."
)
CPU_DOC = "CPU limit in cores; null = the agent's default, 0 = unlimited (if the agent allows it)."
MEMORY_DOC = (
    "Memory limit in MiB (at least 64); null = the agent's default, 0 = unlimited "
    "(if the agent allows it)."
)
PullPolicy = Literal["never", "if-missing", "always"]


def _memory_limit(value: int | None) -> int | None:
    if value is not None and 0 < value < 64:
        raise ValueError("must be 0 (unlimited) or at least 64 MiB")
    return value


PULL_DOC = (
    "When the agent pulls the image: never (locally built images), if-missing, or always; "
    "null = the platform's default (Kubernetes: if-missing)."
)


class TemplateFields(StrictBody):
    display_name: str = Field(..., min_length=1, max_length=100)
    description: str = Field("", max_length=2000)
    category: str = Field("General", min_length=1, max_length=50)
    icon: str = Field("", max_length=255)
    image: str = Field(..., min_length=1, max_length=255, pattern=r"^[^\s]+$")
    vnc_port: int = Field(5900, ge=1, le=65535)
    cpu_limit: float | None = Field(None, ge=0, le=256, description=CPU_DOC)
    memory_limit_mb: int | None = Field(None, ge=0, le=1024 * 1024, description=MEMORY_DOC)
    env: dict[str, str] = Field(default_factory=dict, max_length=100)
    persistent_home: bool = True
    pull: PullPolicy | None = Field(None, description=PULL_DOC)
    egress: bool = Field(True, description=EGRESS_DOC)
    idle_timeout_s: int = Field(1800, ge=60, le=7 * 24 * 3600)
    max_duration_s: int = Field(8 * 3600, ge=60, le=30 * 24 * 3600)
    _check_memory = field_validator("memory_limit_mb")(_memory_limit)


class TemplateCreate(TemplateFields):
    name: str = Field(..., min_length=1, max_length=63, pattern=NAME_PATTERN)


_NULLABLE = frozenset({"cpu_limit", "memory_limit_mb", "pull"})


def _drop_null(schema: dict[str, Any]) -> None:
    for name, prop in schema.get("properties", {}).items():
        if name not in _NULLABLE and "anyOf" in prop:
            prop["anyOf"] = [s for s in prop["anyOf"] if s.get("type") != "null"]
            prop.pop("default", None)


class TemplateUpdate(StrictBody):
    """Omitted fields keep their value; only the limits may be set to null (no limit)."""

    model_config = ConfigDict(json_schema_extra=_drop_null)
    display_name: str | None = Field(None, min_length=1, max_length=100)
    description: str | None = Field(None, max_length=2000)
    category: str | None = Field(None, min_length=1, max_length=50)
    icon: str | None = Field(None, max_length=255)
    image: str | None = Field(None, min_length=1, max_length=255, pattern=r"^[^\s]+$")
    vnc_port: int | None = Field(None, ge=1, le=65535)
    cpu_limit: float | None = Field(None, ge=0, le=256, description=CPU_DOC)
    memory_limit_mb: int | None = Field(None, ge=0, le=1024 * 1024, description=MEMORY_DOC)
    env: dict[str, str] | None = Field(None, max_length=100)
    persistent_home: bool | None = None
    pull: PullPolicy | None = Field(None, description=PULL_DOC)
    egress: bool | None = Field(None, description=EGRESS_DOC)
    idle_timeout_s: int | None = Field(None, ge=60, le=7 * 24 * 3600)
    max_duration_s: int | None = Field(None, ge=60, le=30 * 24 * 3600)
    _check_memory = field_validator("memory_limit_mb")(_memory_limit)

    @model_validator(mode="after")
    def _no_null_for_required_columns(self) -> TemplateUpdate:
        nulls = sorted(n for n in self.model_fields_set - _NULLABLE if getattr(self, n) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} may be omitted but not null")
        return self


class TemplateRead(TemplateCreate):
    model_config = ConfigDict(from_attributes=True)
    id: str
    created_at: datetime
    updated_at: datetime


class SessionCreate(StrictBody):
    template: str = Field(..., min_length=1, max_length=63)
    region: str | None = Field(None, max_length=50)
    platform: Literal["docker", "kubernetes", "memory"] | None = None


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    template: str = Field(validation_alias="template_name")
    user_id: str
    owner: str | None = None
    agent_id: str | None
    state: SessionState
    state_reason: str
    created_at: datetime
    updated_at: datetime
    state_changed_at: datetime
    last_activity_at: datetime
    terminated_at: datetime | None


class Health(BaseModel):
    status: str
    pod_name: str
    version: str
    installation_id: str = Field(
        description="Generated once per database; labels every object this installation's "
        "agents create on Docker or Kubernetes"
    )


class Ready(BaseModel):
    status: str
    pod_name: str
    checks: dict[str, str]


class Page(BaseModel):
    items: list[Any]


class ApiTokenCreate(StrictBody):
    name: str = Field(min_length=1, max_length=100, description="what the token is for")
    scope: Literal["read", "full"] = Field(
        "read", description="read: GET and HEAD only; full: whatever its owner may do"
    )
    expires_in_days: int = Field(30, ge=1, le=365, description="1 to 365 days")


class ApiTokenRead(BaseModel):
    id: str
    prefix: str = Field(description="sst_<id>: how the token starts, to recognise it")
    name: str
    scope: Literal["read", "full"]
    user_id: str
    username: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = Field(
        None, description="recorded at most once a minute per token"
    )
    last_used_address: str = ""
    revoked_at: datetime | None = None
    revoked_by: str = ""
    status: Literal["active", "expired", "revoked"]


class ApiTokenCreated(ApiTokenRead):
    token: str = Field(
        description="the token itself, shown in this answer only: only its hash is kept"
    )


class AuditEventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    created_at: datetime
    org_id: str | None = Field(description="null: the platform's own (agents, orgs)")
    actor: str = Field(description="who did it: a username, or agent:<id>")
    action: str = Field(description="what was done, e.g. auth.login, session.create")
    target: str = Field(description="whom or what it was done to (an id or a name)")
    address: str = Field(description="the client's address, empty when not from a request")
    request_id: str = Field(description="the request's X-Request-ID, to find it in the logs")
    detail: dict[str, Any]


class AuditPage(BaseModel):
    events: list[AuditEventRead]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last page"
    )


class QuotaAmounts(BaseModel):
    """Sessions, CPU (millicores: 1000 = one core) and memory (MiB); null = no limit."""

    sessions: int | None = None
    cpu_millicores: int | None = None
    memory_mb: int | None = None


class QuotaUsage(BaseModel):
    sessions: int
    cpu_millicores: int
    memory_mb: int


class QuotaScope(BaseModel):
    limits: QuotaAmounts = Field(
        description="the limits in effect: its own where set, else the installation's default"
    )
    own: QuotaAmounts = Field(description="the limits set on the user or org itself")
    usage: QuotaUsage = Field(
        description="what its sessions that have not ended or failed hold (hibernated included)"
    )


class QuotaRead(BaseModel):
    user: QuotaScope
    org: QuotaScope


class QuotaUpdate(StrictBody):
    """The own limits of a user or an org, all three replaced; null (or left out) = none of
    its own, the installation's default applies."""

    sessions: int | None = Field(None, ge=0, le=100_000)
    cpu_millicores: int | None = Field(None, ge=0, le=100_000_000)
    memory_mb: int | None = Field(None, ge=0, le=1_000_000_000)


class WebhookCreate(StrictBody):
    url: str = Field(..., min_length=9, max_length=2048, description="https:// only")
    event_types: list[str] = Field(..., min_length=1, max_length=16)
    secret: str | None = Field(
        None, min_length=16, max_length=255, description="default: generated, shown once"
    )


class WebhookUpdate(StrictBody):
    url: str | None = Field(None, min_length=9, max_length=2048)
    event_types: list[str] | None = Field(None, min_length=1, max_length=16)
    enabled: bool | None = None
    secret: str | None = Field(None, min_length=16, max_length=255)


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    org_id: str
    url: str
    event_types: list[str]
    enabled: bool
    created_by: str
    created_at: datetime


class WebhookCreated(WebhookRead):
    secret: str = Field(..., description="signs every delivery; shown here only")


class WebhookDeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str = Field(..., description="the event id receivers dedupe on (X-StreamSpace-Delivery)")
    webhook_id: str
    event_type: str
    payload: dict[str, Any]
    state: Literal["pending", "delivered", "failed"]
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_response: str
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
