"""DockerPlatform: sessions as containers on one Docker engine, reached by the agent on a
private bridge network (no published host ports). Owns the Docker agent's aiodocker calls;
names, labels and container config live in docker_model, the RFB probe in rfb.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import aiodocker
import aiohttp
from aiodocker.containers import DockerContainer
from aiodocker.events import DockerEvents
from aiodocker.networks import DockerNetwork

from streamspace.agents.platforms.base import (
    LimitPolicy,
    Limits,
    ObservedSession,
    Platform,
    SessionSpec,
    VncTarget,
    not_running,
    resolve_limits,
)
from streamspace.agents.platforms.docker_client import LazyDockerClient, docker_errors
from streamspace.agents.platforms.docker_firewall import SessionFirewall
from streamspace.agents.platforms.docker_model import (
    LABEL_AGENT,
    LABEL_EGRESS,
    LABEL_INSTALLATION,
    LABEL_SESSION,
    LABEL_VNC_PORT,
    container_config,
    container_name,
    exit_detail,
    hibernated_name,
    is_hibernated_name,
    network_config,
    object_labels,
    observed_from_summary,
    owned,
    session_address,
    session_network,
    vnc_secret_from_inspect,
    volume_config,
    volume_name,
)
from streamspace.agents.platforms.rfb import PROBE_INTERVAL, read_rfb_banner
from streamspace.agents.rfb_auth import new_secret
from streamspace.config.agent import AgentSettings
from streamspace.errors import NotFound, PlatformError

log = logging.getLogger(__name__)
_SUMMARY_KEYS = ("Id", "Names", "Image", "State", "Status", "Labels", "NetworkSettings")
_LOG_LINES = 20


class DockerPlatform(LazyDockerClient, Platform):
    """Runs each session as one labelled container, its home on a per-user-and-template volume.

    The agent connects to container addresses on the sessions' network, so it runs on the
    Docker host (or with host networking); with `isolate_sessions=False` it may instead be a
    container attached to that network.
    """

    name = "docker"

    def __init__(
        self,
        *,
        agent_id: str,
        network: str = "streamspace-sessions",
        docker_url: str | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: int = 5,
        isolate_sessions: bool = True,
        watch_retry: float = 1.0,
        installation_id: str | None = None,
        limits: LimitPolicy | None = None,
        firewall: SessionFirewall | None = None,
        seal_networks: bool = True,
    ) -> None:
        self._agent_id = agent_id
        self.installation_id = installation_id
        self._network = network
        self._docker_url = docker_url
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._isolate_sessions = isolate_sessions
        self._watch_retry = watch_retry
        self._client: aiodocker.Docker | None = None
        self._limits = limits or LimitPolicy()
        self._firewall = (firewall or SessionFirewall()) if seal_networks else None
        self._sealed: set[str] = set()  # ids of the networks this process has sealed
        self._orphans_checked = False
        self._network_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: AgentSettings, *, installation_id: str | None = None
    ) -> DockerPlatform:
        """The platform `streamspace agent` builds when PLATFORM=docker (its installation id
        comes with the welcome), and the embedded agent with the id it knows."""
        return cls(
            agent_id=settings.agent_id,
            installation_id=installation_id,
            network=settings.docker_network,
            limits=LimitPolicy.from_settings(settings),
            firewall=SessionFirewall(allow=settings.egress_allow_networks),
            seal_networks=settings.session_network_sealing,
        )

    # -- the Platform contract ---------------------------------------------------------------

    async def start(self, spec: SessionSpec) -> ObservedSession:
        container = await self._find(spec.session_id)
        if container is None:
            limits = resolve_limits(spec, self._limits)  # refuse before creating anything
            await self._ensure_network(egress=spec.egress)
            container = await self._create(spec, limits=limits)
        else:
            await self._reattach(container)
        return await self._run_until_ready(container, session_id=spec.session_id)

    async def stop(self, session_id: str) -> None:
        container = await self._find(session_id)
        if container is None:
            return
        with docker_errors(f"removing session {session_id}"):
            try:
                await container.delete(force=True)
            except aiodocker.DockerError as exc:
                if exc.status not in (404, 409):  # gone already, or a removal in progress
                    raise

    async def hibernate(self, session_id: str) -> None:
        container = await self._get(session_id)
        with docker_errors(f"hibernating session {session_id}"):
            # Rename first: the die event of the stop must already see the hibernated name.
            if not is_hibernated_name(container["Names"][0]):
                await container.rename(hibernated_name(session_id))
            if container["State"] in ("running", "restarting", "paused", "created"):
                await container.stop(t=self._stop_timeout)

    async def wake(self, session_id: str) -> ObservedSession:
        container = await self._get(session_id)
        await self._reattach(container)
        return await self._run_until_ready(container, session_id=session_id)

    async def list_sessions(self) -> list[ObservedSession]:
        containers = await self._list()
        await self._seal_networks_in_use(containers)
        return [observed_from_summary(_summary(c), network=self._network) for c in containers]

    async def watch(self) -> AsyncIterator[ObservedSession]:
        """Sessions that stop or fail on their own, from the engine's `die` events.

        `die` follows every way a container ends (its process exiting, `docker kill`, the
        OOM killer, `docker stop`, removal); inspecting the container then tells which:
        hibernated (our rename), missing (removed), or failed (with exit code / OOM).
        On a broken event stream it reconnects and resumes from the last event seen.
        """
        since = _docker_time(time.time_ns())
        while True:
            # aclosing: when the consumer stops watching, the engine stream closes right away.
            async with contextlib.aclosing(self._events(since=since)) as events:
                async for event in events:
                    since = _docker_time(int(event.get("timeNano", time.time_ns())) + 1)
                    observed = await self._observe_event(event)
                    if observed is not None:
                        yield observed
            await asyncio.sleep(self._watch_retry)

    async def vnc_address(self, session_id: str) -> tuple[str, int]:
        target = await self.vnc_target(session_id)
        return target.host, target.port

    async def vnc_target(self, session_id: str) -> VncTarget:
        """The address, and the secret read back from the container's env: any agent replica
        (or this one after a restart) finds it there, and nowhere outside the engine."""
        container = await self._get(session_id)
        observed = observed_from_summary(_summary(container), network=self._network)
        if observed.state != "running" or observed.vnc_host is None or observed.vnc_port is None:
            raise not_running(session_id, observed.state)
        with docker_errors(f"inspecting session {session_id}"):
            info = await container.show()
        secret = vnc_secret_from_inspect(info)
        return VncTarget(host=observed.vnc_host, port=observed.vnc_port, secret=secret)

    # -- finding and creating ----------------------------------------------------------------

    async def _list(self, *, session_id: str | None = None) -> list[DockerContainer]:
        labels = [f"{LABEL_AGENT}={self._agent_id}"]
        if session_id is not None:
            labels.append(f"{LABEL_SESSION}={session_id}")
        with docker_errors("listing sessions"):
            found = await self._docker.containers.list(
                all=True, filters=json.dumps({"label": labels})
            )
        return [c for c in found if self._owns(c["Labels"] or {})]

    def _owns(self, labels: dict[str, str]) -> bool:
        return owned(labels, agent_id=self._agent_id, installation_id=self.installation_id)

    async def _find(self, session_id: str) -> DockerContainer | None:
        found = await self._list(session_id=session_id)
        return found[0] if found else None

    async def _get(self, session_id: str) -> DockerContainer:
        container = await self._find(session_id)
        if container is None:
            raise NotFound(f"session {session_id} has no container on agent {self._agent_id}")
        return container

    async def _ensure_network(self, *, egress: bool) -> str:
        """The id of the sessions' network (with or without egress), created unless it exists,
        and sealed. Looked up on every start and wake (one inspect): a network removed from
        outside is made again, and sealed again (the seal follows the network's id)."""
        name = session_network(self._network, egress=egress)
        async with self._network_lock:
            network = await self._network_info(name, egress=egress)
            if self._firewall is not None and network["Id"] not in self._sealed:
                await self._firewall.seal(network, egress=egress)
                await self._unseal_orphans()
                self._sealed.add(network["Id"])
            return str(network["Id"])

    async def _reattach(self, container: DockerContainer) -> None:
        """Ensure the network of an existing session (made again if it was removed). A stopped
        container holds the id of the network it was on: when that network was removed and
        made again, starting fails ("network <id> not found") until the container is attached
        to the new one."""
        egress = _egress(container)
        network_id = await self._ensure_network(egress=egress)
        name = session_network(self._network, egress=egress)
        networks = (container["NetworkSettings"] or {}).get("Networks") or {}
        attached = (networks.get(name) or {}).get("NetworkID")
        if not attached or attached == network_id:
            return
        with docker_errors(f"attaching {container.id[:12]} to network {name}"):
            network = self._network_ref(network_id)
            await network.disconnect({"Container": container.id, "Force": True})
            await network.connect({"Container": container.id})

    async def _seal_networks_in_use(self, containers: list[DockerContainer]) -> None:
        """Sessions already running when this agent starts (after an upgrade, or an iptables
        flush) get their network sealed now, not at the next session start. The agent lists
        its sessions on every connect; a failure is logged, and the next start reports it."""
        running = {_egress(c) for c in containers if c["State"] == "running"}
        self._sealed.clear()  # sealed again, not trusted: an iptables flush may have undone it
        for egress in sorted(running):
            try:
                await self._ensure_network(egress=egress)
            except PlatformError as exc:
                log.warning("docker: cannot seal the sessions' network: %s", exc.message)

    async def _network_info(self, name: str, *, egress: bool) -> dict[str, Any]:
        with docker_errors(f"creating network {name}"):
            try:
                return await self._show_network(name)
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise
            config = network_config(name, isolate_sessions=self._isolate_sessions, egress=egress)
            try:
                await self._docker.networks.create(config)
            except aiodocker.DockerError as exc:
                if exc.status != 409:  # another replica created it a moment ago
                    raise
            return await self._show_network(name)

    async def _show_network(self, name: str) -> dict[str, Any]:
        """One inspect (`networks.get` would inspect once to build the object, then again)."""
        info: dict[str, Any] = await self._network_ref(name).show()
        return info

    def _network_ref(self, ref: str) -> DockerNetwork:
        """A handle on network `ref` (name or id) without an inspect to build it."""
        return DockerNetwork(self._docker, ref)  # type: ignore[no-untyped-call]

    async def _unseal_orphans(self) -> None:
        """Chains of networks removed while no agent ran go on this agent's first start."""
        if self._orphans_checked or self._firewall is None:
            return
        chains = await self._firewall.chains()
        with docker_errors("listing networks"):
            ids = [n["Id"] for n in await self._docker.networks.list()]
        await self._firewall.unseal_orphans(network_ids=ids, chains=chains)
        self._orphans_checked = True

    async def remove_networks(self) -> None:
        """Remove the sessions' networks (both) and their seals; the sessions must be gone."""
        for egress in (True, False):
            name = session_network(self._network, egress=egress)
            with docker_errors(f"removing network {name}"):
                try:
                    network_id = (await self._show_network(name))["Id"]
                    await self._network_ref(network_id).delete()
                except aiodocker.DockerError as exc:
                    if exc.status != 404:
                        raise
                    continue
            if self._firewall is not None:
                await self._firewall.unseal(network_id)
            self._sealed.discard(network_id)

    async def _create(self, spec: SessionSpec, *, limits: Limits) -> DockerContainer:
        name = container_name(spec.session_id)
        with docker_errors(f"creating session {spec.session_id}"):
            home = await self._home(spec) if spec.persistent_home else None
            config = container_config(
                spec=spec,
                agent_id=self._agent_id,
                installation_id=self.installation_id,
                network=session_network(self._network, egress=spec.egress),
                home=home,
                limits=limits,
                vnc_secret=new_secret(),
            )
            try:
                return await self._create_container(config=config, name=name, image=spec.image)
            except aiodocker.DockerError as exc:
                if exc.status != 409:
                    raise
                # A concurrent start of the same session won the name; the engine reserves
                # the name before the container shows up in listings, so look for a moment.
                return await self._await_concurrent_create(spec.session_id, error=exc)

    async def _home(self, spec: SessionSpec) -> str:
        """The session's home volume, created unless it exists: the installation's own, or the
        legacy-named one when this agent made it before installation ids (its files stay)."""
        owner = object_labels(agent_id=self._agent_id, installation_id=self.installation_id)
        name = volume_name(
            user=spec.user, template=spec.template, installation_id=self.installation_id
        )
        if self.installation_id is not None:
            legacy = volume_name(user=spec.user, template=spec.template)
            labels = await self._volume_labels(legacy)
            if labels is not None and LABEL_INSTALLATION not in labels and self._owns(labels):
                return legacy
        volume = volume_config(spec=spec, name=name, owner=owner)
        await self._docker.volumes.create(volume)  # type: ignore[no-untyped-call]
        return name

    async def _volume_labels(self, name: str) -> dict[str, str] | None:
        """The labels of volume `name`, None when there is no such volume."""
        found = await self._docker.volumes.list(filters={"name": [name]})  # type: ignore[no-untyped-call]
        for volume in found["Volumes"] or []:
            if volume["Name"] == name:
                return dict(volume.get("Labels") or {})
        return None

    async def _await_concurrent_create(
        self, session_id: str, *, error: aiodocker.DockerError
    ) -> DockerContainer:
        for _ in range(100):
            existing = await self._find(session_id)
            if existing is not None:
                return existing
            await asyncio.sleep(0.05)
        raise error

    async def _create_container(
        self, *, config: dict[str, Any], name: str, image: str
    ) -> DockerContainer:
        try:
            return await self._docker.containers.create(config, name=name)
        except aiodocker.DockerError as exc:
            if exc.status != 404 or "image" not in exc.message.lower():
                raise
        await self._pull(image)
        return await self._docker.containers.create(config, name=name)

    async def _pull(self, image: str) -> None:
        try:
            await self._docker.images.pull(image)
        except aiodocker.DockerError as exc:
            raise PlatformError(
                f"image {image} is not on this Docker host and could not be pulled "
                f"({exc.message}); build it locally with images/build.sh",
                code="image_not_found",
            ) from exc

    # -- running and readiness ---------------------------------------------------------------

    async def _run_until_ready(
        self, container: DockerContainer, *, session_id: str
    ) -> ObservedSession:
        with docker_errors(f"starting session {session_id}"):
            info = await self._show_once_registered(container)
            # Rename before starting, so a crash while starting is reported as failed.
            if is_hibernated_name(info["Name"]):
                await container.rename(container_name(session_id))
            if not info["State"]["Running"]:
                await container.start()
            info = await container.show()
        if not info["State"]["Running"]:
            # It exited already (a bad setting, a crash at once): it has no address left, and
            # its exit code and logs are what the user needs.
            reason = f"container stopped before VNC was ready ({exit_detail(info['State'])})"
            raise await self._startup_error(container, session_id=session_id, reason=reason)
        host = self._address(info, session_id=session_id)
        port = int(info["Config"]["Labels"].get(LABEL_VNC_PORT, "5900"))
        await self._wait_for_vnc(container, host=host, port=port, session_id=session_id)
        return ObservedSession(
            session_id=session_id,
            state="running",
            vnc_host=host,
            vnc_port=port,
            metadata={"container_id": info["Id"], "container_name": info["Name"].lstrip("/")},
        )

    async def _show_once_registered(self, container: DockerContainer) -> dict[str, Any]:
        """Inspect a container that a listing showed. The engine lists a container being
        created (by a concurrent start) a moment before it can be inspected, and answers
        404 meanwhile; a container really gone stays 404 and fails after a few seconds."""
        for _ in range(100):
            try:
                info: dict[str, Any] = await container.show()
                return info
            except aiodocker.DockerError as exc:
                if exc.status != 404:
                    raise
            await asyncio.sleep(0.05)
        return await container.show()

    def _address(self, info: dict[str, Any], *, session_id: str) -> str:
        address = session_address(info, network=self._network)
        if not address:
            raise PlatformError(
                f"session {session_id}: container has no address on network {self._network}"
            )
        return address

    async def _wait_for_vnc(
        self, container: DockerContainer, *, host: str, port: int, session_id: str
    ) -> None:
        """Poll the RFB banner; fail fast if the container exits, or after ready_timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_timeout
        next_liveness_check = loop.time() + 1.0
        while await read_rfb_banner(host=host, port=port) is None:
            now = loop.time()
            if now >= deadline:
                reason = f"VNC at {host}:{port} did not answer RFB within {self._ready_timeout:g} s"
                raise await self._startup_error(container, session_id=session_id, reason=reason)
            if now >= next_liveness_check:
                state = (await container.show())["State"]
                if not state["Running"]:
                    reason = f"container stopped before VNC was ready ({exit_detail(state)})"
                    raise await self._startup_error(container, session_id=session_id, reason=reason)
                next_liveness_check = now + 1.0
            await asyncio.sleep(PROBE_INTERVAL)

    async def _startup_error(
        self, container: DockerContainer, *, session_id: str, reason: str
    ) -> PlatformError:
        try:
            lines = await container.log(stdout=True, stderr=True, tail=_LOG_LINES)
            logs = "".join(lines).rstrip() or "(no output)"
        except (aiodocker.DockerError, aiohttp.ClientError) as exc:
            logs = f"(logs unavailable: {exc})"
        return PlatformError(
            f"session {session_id} failed to start: {reason}; last log lines:\n{logs}",
            code="session_start_failed",
        )

    # -- events ------------------------------------------------------------------------------

    async def _events(self, *, since: str) -> AsyncGenerator[dict[str, Any], None]:
        filters = {
            "type": ["container"],
            "event": ["die"],
            "label": [f"{LABEL_AGENT}={self._agent_id}"],
        }
        # aiodocker's events API is untyped; each watch owns its own stream.
        events = DockerEvents(self._docker)  # type: ignore[no-untyped-call]
        subscriber = events.subscribe(  # type: ignore[no-untyped-call]
            since=since, filters=json.dumps(filters)
        )
        try:
            while (event := await subscriber.get()) is not None:
                yield event
        finally:
            # stop() re-raises what ended the stream (say, the engine restarting); the
            # caller reconnects either way.
            with contextlib.suppress(Exception):
                await events.stop()  # type: ignore[no-untyped-call]

    async def _observe_event(self, event: dict[str, Any]) -> ObservedSession | None:
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}  # the container's labels, among others
        session_id = attributes.get(LABEL_SESSION)
        if not session_id or not self._owns(attributes):
            return None
        try:
            info = await self._docker.containers.get(actor.get("ID", ""))
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return ObservedSession(session_id=session_id, state="missing", detail="removed")
            raise PlatformError(f"docker: inspecting session {session_id}: {exc.message}") from exc
        state = info["State"]
        if state["Running"]:
            return None  # started again since (a wake); the die is history
        if state.get("Status") == "removing":
            return ObservedSession(session_id=session_id, state="missing", detail="removed")
        if is_hibernated_name(info["Name"]):
            return ObservedSession(session_id=session_id, state="hibernated")
        return ObservedSession(session_id=session_id, state="failed", detail=exit_detail(state))


def _egress(container: DockerContainer) -> bool:
    """Whether a listed session container is on the egress network (sessions created before
    egress was a setting had it: they carry no label and sit on the egress network)."""
    labels: dict[str, str] = container["Labels"] or {}
    return labels.get(LABEL_EGRESS, "on") != "off"


def _summary(container: DockerContainer) -> dict[str, Any]:
    """The `GET /containers/json` entry a listed container was built from (by lookups alone:
    aiodocker before 0.27 has no `in` for a container)."""
    summary = {}
    for key in _SUMMARY_KEYS:
        with contextlib.suppress(KeyError):
            summary[key] = container[key]
    return summary


def _docker_time(nanoseconds: int) -> str:
    """Docker's `since` format: seconds with a nanosecond fraction."""
    return f"{nanoseconds // 1_000_000_000}.{nanoseconds % 1_000_000_000:09d}"
