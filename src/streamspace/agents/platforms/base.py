"""The `Platform` contract: how an agent runs sessions on Docker, Kubernetes or in memory.

Small on purpose (JupyterHub's Spawner shape): every operation is idempotent and keyed by
session id, so a command re-delivered after a reconnect is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from streamspace.agents.platforms.rfb import log_in
from streamspace.config.agent import AgentSettings
from streamspace.errors import PlatformError

P = TypeVar("P", bound=asyncio.BaseProtocol)
VNC_CONNECT_TIMEOUT = 5.0
ObservedState = Literal["running", "hibernated", "missing", "failed", "starting"]


def not_running(session_id: str, state: str) -> PlatformError:
    """The answer to `vnc_address` for a session that is there but not running."""
    return PlatformError(
        f"session {session_id} is {state}; its VNC server runs only while it runs",
        code="session_not_running",
    )


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    """Everything a platform needs to run one session (built from the template)."""

    session_id: str
    user: str
    template: str
    image: str
    vnc_port: int = 5900
    cpu_limit: float | None = None  # cores; None = the agent's default, 0 = unlimited
    memory_limit_mb: int | None = None  # None = the agent's default, 0 = unlimited
    env: dict[str, str] = field(default_factory=dict)
    persistent_home: bool = True
    pull: str | None = None  # never | if-missing | always; None = the platform's default
    egress: bool = True  # may the session connect to the internet (never to private ranges)

    @property
    def home_key(self) -> str:
        """Home volumes are per user and template, so files survive from session to session."""
        return f"{self.user}-{self.template}"


@dataclass(frozen=True, kw_only=True)
class LimitPolicy:
    """The agent's limits (SESSION_DEFAULT_CPU, ...): what a template without limits gets, the
    PIDs limit of every session, and whether a template may ask for no limit at all."""

    cpu: float = 2.0
    memory_mb: int = 2048
    pids: int = 1024
    allow_unlimited: bool = False

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> LimitPolicy:
        return cls(
            cpu=settings.session_default_cpu,
            memory_mb=settings.session_default_memory_mb,
            pids=settings.session_pids_limit,
            allow_unlimited=settings.session_allow_unlimited,
        )


@dataclass(frozen=True, kw_only=True)
class Limits:
    """The limits one session runs with; None = unlimited (only where the agent allows it)."""

    cpu: float | None
    memory_mb: int | None
    pids: int


def resolve_limits(spec: SessionSpec, policy: LimitPolicy) -> Limits:
    """The template's limits, else the agent's defaults; 0 asks for none, which the agent
    refuses unless SESSION_ALLOW_UNLIMITED is on (a template admin is not a host admin)."""
    cpu = policy.cpu if spec.cpu_limit is None else spec.cpu_limit
    memory = policy.memory_mb if spec.memory_limit_mb is None else spec.memory_limit_mb
    unlimited = [name for name, value in (("CPU", cpu), ("memory", memory)) if value <= 0]
    if unlimited and not policy.allow_unlimited:
        raise PlatformError(
            f"template {spec.template!r} asks for unlimited {' and '.join(unlimited)}, which "
            "this agent does not allow (SESSION_ALLOW_UNLIMITED=false); give the template a "
            "limit or leave it empty for the agent's default",
            code="unlimited_refused",
        )
    return Limits(
        cpu=cpu if cpu > 0 else None, memory_mb=memory if memory > 0 else None, pids=policy.pids
    )


@dataclass(frozen=True, kw_only=True)
class ObservedSession:
    """What the platform sees of one session."""

    session_id: str
    state: ObservedState
    vnc_host: str | None = None
    vnc_port: int | None = None
    detail: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    # made before installation ids (no installation label) and taken as this agent's by its
    # agent id alone: it may be another installation's on a shared engine (see `observed`)
    adopted: bool = False


@dataclass(frozen=True, kw_only=True)
class VncTarget:
    """Where a session's VNC server listens, and the secret it requires: None for a session
    created before the agent gave every session one (it runs without a password)."""

    host: str
    port: int
    secret: str | None = field(default=None, repr=False)


class Platform(ABC):
    """Runs sessions. Implementations: DockerPlatform, KubernetesPlatform, MemoryPlatform."""

    name: str = "abstract"
    # The control plane's installation (None: one from before installation ids, which keeps
    # to the agent id alone). Objects the platform creates carry it; it lists only its own.
    installation_id: str | None = None

    def use_installation(self, installation_id: str) -> None:
        """The installation id the control plane's welcome names (before any listing)."""
        self.installation_id = installation_id

    @abstractmethod
    async def start(self, spec: SessionSpec) -> ObservedSession:
        """Create and start the session; return once its VNC port answers RFB. Idempotent."""

    @abstractmethod
    async def stop(self, session_id: str) -> None:
        """Remove the session's workload but keep the user's home. Idempotent."""

    @abstractmethod
    async def hibernate(self, session_id: str) -> None:
        """Stop the workload, keeping it restartable (scale to zero). Idempotent."""

    @abstractmethod
    async def wake(self, session_id: str) -> ObservedSession:
        """Start a hibernated session again; return once VNC answers. Idempotent."""

    @abstractmethod
    async def list_sessions(self) -> list[ObservedSession]:
        """Every session this agent's platform holds (by label), with its real state."""

    @abstractmethod
    def watch(self) -> AsyncIterator[ObservedSession]:
        """Yield an ObservedSession each time a session changes state on its own (crash, exit)."""

    @abstractmethod
    async def vnc_address(self, session_id: str) -> tuple[str, int]:
        """Where the session's VNC server listens on the container network (host, port);
        PlatformError when it is not running, NotFound when there is no such session."""

    async def vnc_target(self, session_id: str) -> VncTarget:
        """`vnc_address` and the session's VNC secret. Platforms that give sessions a secret
        override this and read it back from the session (so another agent replica, or this
        one after a restart, finds it); the default is a session without one."""
        host, port = await self.vnc_address(session_id)
        return VncTarget(host=host, port=port)

    async def open_vnc(
        self, session_id: str, protocol_factory: Callable[[], P]
    ) -> tuple[asyncio.Transport, P, bool]:
        """Open a TCP connection to the session's VNC server, driven by `protocol_factory`'s
        protocol (the agent's streams read straight into their frames: agents/streams.py).

        When the session has a secret, the agent logs in first (platforms/rfb.py), and the
        third value is True: the protocol starts where the server waits for ClientInit, and
        whoever relays it to a viewer greets the viewer itself (agents/rfb_auth.py)."""
        target = await self.vnc_target(session_id)
        where = f"session {session_id}: cannot connect to VNC at {target.host}:{target.port}"
        loop = asyncio.get_running_loop()
        try:
            if target.secret is None:
                async with asyncio.timeout(VNC_CONNECT_TIMEOUT):
                    transport, protocol = await loop.create_connection(
                        protocol_factory, target.host, target.port
                    )
                return transport, protocol, False
            sock = await _logged_in(target, secret=target.secret)
            transport, protocol = await loop.create_connection(protocol_factory, sock=sock)
            return transport, protocol, True
        except (OSError, TimeoutError) as exc:
            raise PlatformError(f"{where} ({exc!r})") from exc

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients; default does nothing."""


async def _logged_in(target: VncTarget, *, secret: str) -> socket.socket:
    """A socket to the target's VNC server, past its VNC Authentication."""
    loop = asyncio.get_running_loop()
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(VNC_CONNECT_TIMEOUT):
            family, kind, proto, _, address = (
                await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
            )[0]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            await loop.sock_connect(sock, address)
        await log_in(sock, secret=secret, patience=VNC_CONNECT_TIMEOUT)
    except BaseException:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        raise
    return sock
