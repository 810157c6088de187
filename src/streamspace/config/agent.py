"""Agent settings: every environment variable `streamspace agent` reads.

The guide's names (AGENT_ID, CONTROL_PLANE_URL, PLATFORM, REGION, ENABLE_HA,
LEADER_ELECTION_BACKEND, LOCK_FILE_PATH, REDIS_URL, POD_NAME) work exactly as written.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streamspace.config.control_plane import describe_validation_error
from streamspace.config.durations import Seconds, env
from streamspace.config.redis_urls import SENTINEL_URL_FORM, parse_sentinel_url
from streamspace.errors import ConfigError

# Kubernetes object names (RFC 1123 subdomain) and resource quantities, checked at start.
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUANTITY = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
LABEL_SELECTOR = r"^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*(,[A-Za-z0-9./_-]+=[A-Za-z0-9._-]*)*$"


class AgentSettings(BaseSettings):
    """Settings of one agent replica."""

    model_config = SettingsConfigDict(populate_by_name=True, extra="ignore", frozen=True)

    agent_id: str = Field(
        ...,
        min_length=3,
        max_length=100,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        validation_alias=env("AGENT_ID"),
        description="Unique id of this logical agent (one per cluster or host).",
    )
    control_plane_url: str = Field(
        ...,
        pattern=r"^(wss?|https?)://",
        validation_alias=env("CONTROL_PLANE_URL"),
        description="Control plane base URL (ws://, wss://, http:// or https://).",
    )
    platform: Literal["docker", "kubernetes", "memory"] = Field(
        "docker",
        validation_alias=env("PLATFORM"),
        description="Where sessions run: docker, kubernetes, or memory (tests).",
    )
    region: str = Field(
        "default",
        max_length=50,
        validation_alias=env("REGION"),
        description="Region reported to the scheduler.",
    )
    max_sessions: int = Field(
        20,
        ge=1,
        validation_alias=env("MAX_SESSIONS"),
        description="Sessions this agent accepts at most.",
    )
    bootstrap_key: str | None = Field(
        None,
        validation_alias=env("AGENT_BOOTSTRAP_KEY"),
        description="Shared key for first registration.",
    )
    api_key: str | None = Field(
        None,
        validation_alias=env("AGENT_API_KEY"),
        description="This agent's own key (else read from AGENT_KEY_FILE).",
    )
    key_file: Path = Field(
        Path("/var/lib/streamspace/agent.key"),
        validation_alias=env("AGENT_KEY_FILE"),
        description="Where the agent keeps the key it receives on approval.",
    )
    key_secret: str | None = Field(
        None,
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
        validation_alias=env("AGENT_KEY_SECRET"),
        description="Kubernetes Secret (in NAMESPACE) that keeps the key instead of "
        "AGENT_KEY_FILE, shared by every replica of this agent.",
    )
    alive_file: Path | None = Field(
        None,
        validation_alias=env("AGENT_ALIVE_FILE"),
        description="File the agent touches every few seconds while it runs, for container "
        "health checks (`streamspace agent-health`). Unset: none.",
    )
    heartbeat_interval: Seconds = Field(
        30.0,
        gt=0,
        validation_alias=env("HEARTBEAT_INTERVAL"),
        description="Seconds between heartbeats.",
    )
    approval_poll_interval: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("APPROVAL_POLL_INTERVAL"),
        description="Seconds between registration retries while pending approval.",
    )
    reconnect_max_backoff: Seconds = Field(
        30.0,
        gt=0,
        validation_alias=env("RECONNECT_MAX_BACKOFF"),
        description="Cap of the reconnect backoff.",
    )
    stream_resume_grace: Seconds = Field(
        30.0,
        ge=0,
        validation_alias=env("STREAM_RESUME_GRACE"),
        description="Seconds a viewer's VNC connection is kept open after the control-plane "
        "connection drops, so the viewer's replica can resume the stream where it stopped "
        "once the agent is back (0: streams end with the connection).",
    )
    enable_ha: bool = Field(
        False,
        validation_alias=env("ENABLE_HA"),
        description="Run active/standby with leader election.",
    )
    leader_election_backend: Literal["file", "redis", "swarm", "kubernetes"] | None = Field(
        None,
        validation_alias=env("LEADER_ELECTION_BACKEND"),
        description="Leader election backend. Default: `kubernetes` (a Lease) when "
        "PLATFORM=kubernetes, else `file`.",
    )
    lock_file_path: Path = Field(
        Path("/var/run/streamspace/agent.lock"),
        validation_alias=env("LOCK_FILE_PATH"),
        description="Lock file for the file backend.",
    )
    redis_url: str = Field(
        "redis://localhost:6379/0",
        validation_alias=env("REDIS_URL"),
        description="Redis for the redis backend: redis://host:port/db, or through Sentinel "
        f"(follows a failover) {SENTINEL_URL_FORM}.",
    )
    swarm_service: str | None = Field(
        None,
        validation_alias=env("SWARM_SERVICE_NAME"),
        description="Swarm service carrying the leader label (default: this task's service).",
    )
    pod_name: str = Field(
        default_factory=socket.gethostname,
        validation_alias=env("POD_NAME"),
        description="Identity of this replica in leader election.",
    )
    lease_duration: Seconds = Field(
        15.0,
        gt=0,
        validation_alias=env("LEASE_DURATION"),
        description="How long a leader holds the lease.",
    )
    renew_deadline: Seconds = Field(
        10.0,
        gt=0,
        validation_alias=env("RENEW_DEADLINE"),
        description="A leader that cannot renew within this stops.",
    )
    retry_period: Seconds = Field(
        2.0,
        gt=0,
        validation_alias=env("RETRY_PERIOD"),
        description="How often candidates try to acquire.",
    )
    docker_network: str = Field(
        "streamspace-sessions",
        validation_alias=env("DOCKER_NETWORK"),
        description="Docker network the session containers join.",
    )
    session_network_sealing: bool = Field(
        True,
        validation_alias=env("SESSION_NETWORK_SEALING"),
        description="Seal the sessions' Docker networks with iptables rules the agent owns: "
        "sessions reach neither the host nor private addresses (docs/security.md). Needs root "
        "(CAP_NET_ADMIN) and dockerd's iptables; without them sessions fail to start unless "
        "this is false, which leaves the host and private networks open to every session.",
    )
    session_egress_allow: str = Field(
        "",
        validation_alias=env("SESSION_EGRESS_ALLOW"),
        description="Comma-separated private addresses or CIDR networks sessions with egress "
        "may still reach (all ports), e.g. the DNS resolver Docker forwards to when it is on "
        "a private address. Never the Docker host itself.",
    )
    session_default_cpu: float = Field(
        2.0,
        gt=0,
        le=256,
        validation_alias=env("SESSION_DEFAULT_CPU"),
        description="CPU limit (cores) of sessions whose template sets none.",
    )
    session_default_memory_mb: int = Field(
        2048,
        ge=64,
        validation_alias=env("SESSION_DEFAULT_MEMORY_MB"),
        description="Memory limit (MiB) of sessions whose template sets none.",
    )
    session_pids_limit: int = Field(
        1024,
        ge=32,
        validation_alias=env("SESSION_PIDS_LIMIT"),
        description="Processes and threads one session may have (Docker; on Kubernetes the "
        "kubelet's podPidsLimit applies per node).",
    )
    session_allow_unlimited: bool = Field(
        False,
        validation_alias=env("SESSION_ALLOW_UNLIMITED"),
        description="Whether a template may ask for no CPU or memory limit (0); when false "
        "such sessions fail to start with the reason.",
    )
    kubeconfig: Path | None = Field(
        None,
        validation_alias=env("KUBECONFIG"),
        description="Kubernetes client config, used when not running in a cluster (in a pod "
        "the service account is used). Default: `~/.kube/config`.",
    )
    namespace: str | None = Field(
        None,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        validation_alias=env("NAMESPACE"),
        description="Namespace of session pods, home claims and the leader Lease. Default: "
        "the service account's namespace in a pod, else the kubeconfig context's, else `default`.",
    )
    session_storage_class: str | None = Field(
        None,
        validation_alias=env("SESSION_STORAGE_CLASS"),
        description="StorageClass of the home PersistentVolumeClaims (Kubernetes). Default: "
        "the cluster's default class.",
    )
    session_home_size: str = Field(
        "5Gi",
        pattern=QUANTITY,
        validation_alias=env("SESSION_HOME_SIZE"),
        description="Size requested by each home PersistentVolumeClaim (Kubernetes quantity).",
    )
    agent_pod_labels: str = Field(
        "app.kubernetes.io/component=k8s-agent",
        pattern=LABEL_SELECTOR,
        validation_alias=env("AGENT_POD_LABELS"),
        description="Labels (`k=v,k=v`) of this agent's own pods: the sessions' NetworkPolicy "
        "admits VNC connections from those pods only (Kubernetes).",
    )
    vnc_secret_seed: str = Field(
        "",
        repr=False,
        validation_alias=env("VNC_SECRET_SEED"),
        description="Kubernetes: a secret of at least 32 characters from which the agent "
        "derives each session's VNC password, so it never reads a Secret back and needs only "
        "`create` on Secrets (the chart sets one). Unset: random passwords, read back from "
        "each session's Secret (the Role then needs `get` and `delete` on Secrets). Every "
        "agent replica needs the same value; changing it cuts the running sessions' streams "
        "until they are hibernated and woken, or restarted.",
    )

    @field_validator("vnc_secret_seed")
    @classmethod
    def _check_seed(cls, value: str) -> str:
        if value and len(value) < 32:
            raise ValueError("VNC_SECRET_SEED must be at least 32 characters (or unset)")
        return value

    @field_validator("session_egress_allow")
    @classmethod
    def _check_egress_allow(cls, value: str) -> str:
        for entry in filter(None, (part.strip() for part in value.split(","))):
            try:
                if ipaddress.ip_network(entry, strict=False).version != 4:
                    raise ValueError(f"{entry!r}: session networks are IPv4 only")
            except ValueError as exc:
                raise ValueError(
                    f"{entry!r} is not an IPv4 address or CIDR network ({exc})"
                ) from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str) -> str:
        parse_sentinel_url(value)  # raises on a malformed sentinel URL
        return value

    @model_validator(mode="after")
    def _check(self) -> AgentSettings:
        if not self.lease_duration > self.renew_deadline > self.retry_period:
            raise ValueError("need LEASE_DURATION > RENEW_DEADLINE > RETRY_PERIOD")
        uses_k8s = self.platform == "kubernetes" or (
            self.enable_ha and self.election_backend == "kubernetes"
        )
        if uses_k8s and not DNS_SUBDOMAIN.fullmatch(self.agent_id):
            raise ValueError(
                f"AGENT_ID {self.agent_id!r} must be a lowercase DNS name (a-z, 0-9, '-', '.') "
                "on Kubernetes: it names the Lease streamspace-agent-<id> and labels its objects"
            )
        return self

    @property
    def election_backend(self) -> Literal["file", "redis", "swarm", "kubernetes"]:
        """LEADER_ELECTION_BACKEND, else the Lease on Kubernetes and the file lock elsewhere."""
        if self.leader_election_backend is not None:
            return self.leader_election_backend
        return "kubernetes" if self.platform == "kubernetes" else "file"

    @property
    def egress_allow_networks(self) -> list[str]:
        """SESSION_EGRESS_ALLOW as normalised networks (`10.0.0.2` -> `10.0.0.2/32`)."""
        entries = (part.strip() for part in self.session_egress_allow.split(","))
        return [str(ipaddress.ip_network(entry, strict=False)) for entry in entries if entry]

    @property
    def http_base_url(self) -> str:
        url = self.control_plane_url.rstrip("/")
        return url.replace("wss://", "https://", 1).replace("ws://", "http://", 1)

    @property
    def ws_base_url(self) -> str:
        url = self.http_base_url
        return url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)


def load_agent_settings(**overrides: object) -> AgentSettings:
    """Read the environment once; raise ConfigError with a readable message on bad values."""
    try:
        return AgentSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from exc
