"""KubernetesPlatform: sessions as Pods in one namespace, reached by the agent at the pod IP.

Owns the Kubernetes agent's API calls (kubernetes_asyncio); names, manifests and the status
mapping live in kubernetes_model, the RFB probe in rfb. Every operation is idempotent: an
object that already exists (409) or is already gone (404) is the outcome wanted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from streamspace.agents.platforms import kubernetes_model as model
from streamspace.agents.platforms.base import (
    LimitPolicy,
    ObservedSession,
    Platform,
    SessionSpec,
    VncTarget,
    not_running,
    resolve_limits,
)
from streamspace.agents.platforms.rfb import PROBE_INTERVAL, read_rfb_banner
from streamspace.agents.rfb_auth import derived_secret, new_secret
from streamspace.config.agent import AgentSettings
from streamspace.errors import NotFound, PlatformError
from streamspace.kubeconn import KubeConnection

_LOG_LINES = 20
_POLL = 0.05  # reading a Pod that has no address yet, or that is going away
_RECHECK = 0.5  # reading a Pod whose VNC is being probed: has it failed meanwhile?


def _api_error(action: str, exc: ApiException) -> PlatformError:
    """One error family for callers; a quota refusal is a capacity answer, not a crash."""
    message = _message(exc)
    if exc.status == 403 and "exceeded quota" in message:
        return PlatformError(
            f"kubernetes: {action} refused by the namespace's ResourceQuota: {message}",
            code="capacity",
        )
    return PlatformError(f"kubernetes: {action} failed ({exc.status}): {message}")


def _message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


class KubernetesPlatform(Platform):
    """Runs each session as one labelled Pod with a record and a home claim."""

    name = "kubernetes"

    def __init__(
        self,
        *,
        agent_id: str,
        namespace: str | None = None,
        kubeconfig: Path | None = None,
        home_size: str = "5Gi",
        storage_class: str | None = None,
        agent_pod_labels: str = "app.kubernetes.io/component=k8s-agent",
        ready_timeout: float = 60.0,
        stop_timeout: int = 5,
        watch_retry: float = 1.0,
        limits: LimitPolicy | None = None,
        vnc_secret_seed: str = "",
    ) -> None:
        self._agent_id = agent_id
        self._limits = limits or LimitPolicy()
        # With a seed, session secrets are derived, never read back, and their Secrets go
        # with the session's record (owner reference): the agent only creates Secrets.
        self._seed = vnc_secret_seed
        self._kube = KubeConnection(namespace=namespace, kubeconfig=kubeconfig)
        self._home_size, self._storage_class = home_size, storage_class
        self._agent_pod_labels = model.parse_labels(agent_pod_labels)
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._watch_retry = watch_retry
        self._policy_ready = False

    @classmethod
    def from_settings(cls, settings: AgentSettings) -> KubernetesPlatform:
        """The platform `streamspace agent` builds when PLATFORM=kubernetes."""
        return cls(
            agent_id=settings.agent_id,
            namespace=settings.namespace,
            kubeconfig=settings.kubeconfig,
            home_size=settings.session_home_size,
            storage_class=settings.session_storage_class,
            agent_pod_labels=settings.agent_pod_labels,
            limits=LimitPolicy.from_settings(settings),
            vnc_secret_seed=settings.vnc_secret_seed,
        )

    async def _core(self) -> tuple[client.CoreV1Api, str]:
        api, namespace = await self._kube.open()
        return client.CoreV1Api(api), namespace

    @property
    def namespace(self) -> str | None:
        return self._kube.namespace

    async def close(self) -> None:
        await self._kube.close()

    # -- the Platform contract ---------------------------------------------------------------

    async def start(self, spec: SessionSpec) -> ObservedSession:
        resolve_limits(spec, self._limits)  # refuse before creating anything
        await self._ensure_policy()
        if spec.persistent_home:
            await self._create(
                "persistent_volume_claim",
                model.claim_manifest(
                    spec=spec,
                    agent_id=self._agent_id,
                    size=self._home_size,
                    storage_class=self._storage_class,
                    installation_id=self.installation_id,
                ),
            )
        record = model.record_manifest(
            spec=spec,
            agent_id=self._agent_id,
            state="running",
            installation_id=self.installation_id,
        )
        if not await self._create("config_map", record):
            await self._set_record_state(spec.session_id, "running")
        return await self._run(spec)

    async def stop(self, session_id: str) -> None:
        name = model.pod_name(session_id)
        await self._delete("pod", name, grace=0)
        await self._delete("config_map", name)  # with a seed, its Secret goes with it
        if not self._seed:
            await self._delete("secret", name)

    async def hibernate(self, session_id: str) -> None:
        record = await self._record(session_id)
        if record is None:
            raise NotFound(f"session {session_id} has no record on agent {self._agent_id}")
        # Mark first: the pod's deletion events must already read as a hibernation.
        await self._set_record_state(session_id, "hibernated")
        await self._delete("pod", model.pod_name(session_id), grace=self._stop_timeout)
        await self._wait_gone(session_id)

    async def wake(self, session_id: str) -> ObservedSession:
        record = await self._record(session_id)
        if record is None:
            raise NotFound(f"session {session_id} has no record on agent {self._agent_id}")
        # Only a hibernated session's pod can still be going away; an awake one's pod stays,
        # and waiting for it to go would fail a re-delivered wake after a minute.
        if model.record_state(record) == "hibernated":
            await self._wait_gone(session_id)  # a hibernation may still be finishing
            await self._set_record_state(session_id, "running")
        return await self._run(model.spec_from_record(record))

    async def list_sessions(self) -> list[ObservedSession]:
        pods, records = await self._pods_and_records()
        seen = [
            model.observe_pod(pod, record=model.record_state(records.get(_session_of(pod))))
            for pod in pods
        ]
        with_pods = {s.session_id for s in seen}
        seen += [
            ObservedSession(session_id=session_id, state="hibernated")
            for session_id, record in records.items()
            if session_id not in with_pods and model.record_state(record) == "hibernated"
        ]
        return seen

    async def watch(self) -> AsyncIterator[ObservedSession]:
        """Sessions whose Pod fails, is evicted, loses its node, or goes away, from a watch
        on the agent's label. The watch resumes from the last resourceVersion seen; when the
        server answers 410 Gone (too old) it lists again and starts over from there."""
        reported: dict[str, tuple[str, str]] = {}
        while True:
            try:
                async for observed in self._watch_once(reported):
                    yield observed
            except ApiException as exc:
                if exc.status != 410:
                    raise _api_error("watching session pods", exc) from exc
            await asyncio.sleep(self._watch_retry)

    async def vnc_address(self, session_id: str) -> tuple[str, int]:
        """The pod IP while its container runs. Not gated on the Ready condition: the kubelet
        sets it up to a probe period after VNC answers, and the agent checks RFB itself."""
        target = await self.vnc_target(session_id)
        return target.host, target.port

    async def vnc_target(self, session_id: str) -> VncTarget:
        """The address, and the secret the Pod's env references, read from its Secret: any
        agent replica finds it there (or, with a seed, derives it again without reading). A Pod
        without that reference has no VNC password."""
        pod = await self._read_pod(session_id)
        if pod is None:
            if await self._record(session_id) is None:
                raise NotFound(f"session {session_id} has no pod on agent {self._agent_id}")
            raise not_running(session_id, "hibernated")
        observed = model.observe_pod(pod, record="running")
        address = model.running_address(pod)
        if address is None or observed.state not in ("running", "starting"):
            raise not_running(session_id, observed.state)
        reference = model.secret_reference(pod)
        if reference is None:
            return VncTarget(host=address[0], port=address[1])
        if self._seed:
            derived = derived_secret(seed=self._seed, session_id=session_id)
            return VncTarget(host=address[0], port=address[1], secret=derived)
        name, key = reference
        stored = await self._read("secret", name)
        value = None if stored is None else model.secret_value(stored, key=key)
        if value is None:
            raise PlatformError(f"session {session_id}: its VNC secret {name} is gone")
        return VncTarget(host=address[0], port=address[1], secret=value)

    # -- running and readiness ---------------------------------------------------------------

    async def _run(self, spec: SessionSpec) -> ObservedSession:
        # Before the Pod, which cannot start without it. An existing one is kept: a start
        # delivered again, or a wake, must not change the secret of a running VNC server.
        await self._create("secret", await self._secret_manifest(spec))
        manifest = model.pod_manifest(
            spec=spec,
            agent_id=self._agent_id,
            pull_policy=model.pull_policy(spec.pull),
            stop_timeout=self._stop_timeout,
            installation_id=self.installation_id,
            limits=resolve_limits(spec, self._limits),
            secret_name=(
                model.seeded_secret_name(spec.session_id, seed=self._seed) if self._seed else None
            ),
        )
        await self._create("pod", manifest)
        return await self._wait_for_vnc(spec)

    async def _wait_for_vnc(self, spec: SessionSpec) -> ObservedSession:
        """Poll the Pod until it has an address, then probe its VNC every PROBE_INTERVAL
        (reading the Pod only every _RECHECK meanwhile: the API server is shared); fail fast
        on a pod that cannot run (image, quota, crash, eviction), with its last log lines."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ready_timeout
        host: str | None = None
        observed: ObservedSession | None = None
        next_read = loop.time()
        while True:
            if loop.time() >= next_read:
                pod = await self._read_pod(spec.session_id)
                if pod is None:
                    raise PlatformError(
                        f"session {spec.session_id} failed to start: its pod was deleted",
                        code="session_start_failed",
                    )
                observed = model.observe_pod(pod, record="running")
                if observed.state in ("failed", "missing"):
                    raise await self._startup_error(spec.session_id, reason=observed.detail)
                host = observed.vnc_host or (pod.get("status") or {}).get("podIP")
                next_read = loop.time() + (_RECHECK if host else _POLL)
            assert observed is not None
            if host and await read_rfb_banner(host=host, port=spec.vnc_port) is not None:
                return ObservedSession(
                    session_id=spec.session_id,
                    state="running",
                    vnc_host=host,
                    vnc_port=spec.vnc_port,
                    metadata=observed.metadata,
                )
            if loop.time() >= deadline:
                why = observed.detail or f"VNC at {host}:{spec.vnc_port} did not answer RFB"
                raise await self._startup_error(
                    spec.session_id,
                    reason=f"not ready within {self._ready_timeout:g} s ({why})",
                )
            await asyncio.sleep(PROBE_INTERVAL if host else _POLL)

    async def _startup_error(self, session_id: str, *, reason: str) -> PlatformError:
        core, namespace = await self._core()
        try:
            logs = await core.read_namespaced_pod_log(
                model.pod_name(session_id), namespace, tail_lines=_LOG_LINES
            )
            text = str(logs).rstrip() or "(no output)"
        except ApiException as exc:
            text = f"(logs unavailable: {_message(exc)})"
        return PlatformError(
            f"session {session_id} failed to start: {reason}; last log lines:\n{text}",
            code="session_start_failed",
        )

    async def _wait_gone(self, session_id: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._stop_timeout + self._ready_timeout
        while await self._read_pod(session_id) is not None:
            if loop.time() >= deadline:
                raise PlatformError(f"session {session_id}: its pod did not go away in time")
            await asyncio.sleep(_POLL)

    # -- watching ----------------------------------------------------------------------------

    async def _watch_once(
        self, reported: dict[str, tuple[str, str]]
    ) -> AsyncIterator[ObservedSession]:
        """List, report what the list shows (a failure may have happened while no watch was
        open), then watch from the list's resourceVersion."""
        core, namespace = await self._core()
        selector = model.session_selector(self._agent_id)
        listed = await core.list_namespaced_pod(namespace, label_selector=selector)
        pods = self._own(self._kube.plain(listed).get("items", []))
        for pod in pods:
            observed = await self._observe_event({"type": "ADDED", "raw_object": pod})
            if observed is not None and _changed(reported, observed):
                yield observed
        for observed in await self._hibernated_without_pods({_session_of(p) for p in pods}):
            if _changed(reported, observed):
                yield observed
        stream = watch.Watch()
        try:
            async for event in stream.stream(
                core.list_namespaced_pod,
                namespace,
                label_selector=selector,
                resource_version=listed.metadata.resource_version,
                allow_watch_bookmarks=True,
            ):
                observed = await self._observe_event(event)
                if observed is not None and _changed(reported, observed):
                    yield observed
        finally:
            await stream.close()

    async def _hibernated_without_pods(self, with_pods: set[str]) -> list[ObservedSession]:
        core, namespace = await self._core()
        records = await core.list_namespaced_config_map(
            namespace, label_selector=model.record_selector(self._agent_id)
        )
        return [
            ObservedSession(session_id=_session_of(record), state="hibernated")
            for record in self._own(self._kube.plain(records).get("items", []))
            if _session_of(record) not in with_pods and model.record_state(record) == "hibernated"
        ]

    async def _observe_event(self, event: dict[str, Any]) -> ObservedSession | None:
        if event.get("type") not in ("ADDED", "MODIFIED", "DELETED"):
            return None
        pod: dict[str, Any] = event["raw_object"]
        session_id = _session_of(pod)
        if not session_id or not model.owned(pod, installation_id=self.installation_id):
            return None
        record = model.record_state(await self._record(session_id))
        if event["type"] == "DELETED":
            if record == "hibernated":
                return ObservedSession(session_id=session_id, state="hibernated")
            return ObservedSession(session_id=session_id, state="missing", detail="pod removed")
        return model.observe_pod(pod, record=record)

    # -- objects -----------------------------------------------------------------------------

    async def _secret_manifest(self, spec: SessionSpec) -> dict[str, Any]:
        """The session's VNC Secret: a derived secret owned by the session's record (so it
        goes when the record is deleted, without the agent deleting Secrets), or, without a
        seed, a random one the agent reads back and deletes itself."""
        if not self._seed:
            return model.secret_manifest(
                spec=spec,
                agent_id=self._agent_id,
                secret=new_secret(),
                installation_id=self.installation_id,
            )
        record = await self._record(spec.session_id)
        if record is None:  # stopped meanwhile: an ownerless Secret could never be removed
            raise NotFound(f"session {spec.session_id} was stopped while it started")
        return model.secret_manifest(
            spec=spec,
            agent_id=self._agent_id,
            secret=derived_secret(seed=self._seed, session_id=spec.session_id),
            installation_id=self.installation_id,
            owner=record,
            name=model.seeded_secret_name(spec.session_id, seed=self._seed),
        )

    async def _ensure_policy(self) -> None:
        """Create the sessions' NetworkPolicies, or bring them up to date: a policy left by an
        older agent must not keep its looser rules."""
        if self._policy_ready:
            return
        manifests = [
            model.policy_manifest(agent_id=self._agent_id, agent_pod_labels=self._agent_pod_labels),
            model.egress_policy_manifest(agent_id=self._agent_id),
        ]
        api, namespace = await self._kube.open()
        networking = client.NetworkingV1Api(api)
        for manifest in manifests:
            body: Any = manifest
            try:
                try:
                    await networking.create_namespaced_network_policy(namespace, body)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                    name = manifest["metadata"]["name"]
                    patch: Any = {"spec": manifest["spec"]}
                    await networking.patch_namespaced_network_policy(name, namespace, patch)
            except ApiException as exc:
                raise _api_error("creating the sessions' NetworkPolicies", exc) from exc
        self._policy_ready = True

    async def _create(self, kind: str, manifest: dict[str, Any]) -> bool:
        """Create one object; False when it exists already."""
        core, namespace = await self._core()
        create = getattr(core, f"create_namespaced_{kind}")
        try:
            await create(namespace, manifest)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise _api_error(f"creating {kind} {manifest['metadata']['name']}", exc) from exc
        return True

    async def _delete(self, kind: str, name: str, *, grace: int | None = None) -> None:
        core, namespace = await self._core()
        delete = getattr(core, f"delete_namespaced_{kind}")
        kwargs = {} if grace is None else {"grace_period_seconds": grace}
        try:
            await delete(name, namespace, **kwargs)
        except ApiException as exc:
            if exc.status != 404:
                raise _api_error(f"deleting {kind} {name}", exc) from exc

    async def _read_pod(self, session_id: str) -> dict[str, Any] | None:
        return await self._read("pod", model.pod_name(session_id))

    async def _record(self, session_id: str) -> dict[str, Any] | None:
        return await self._read("config_map", model.pod_name(session_id))

    async def _read(self, kind: str, name: str) -> dict[str, Any] | None:
        core, namespace = await self._core()
        read = getattr(core, f"read_namespaced_{kind}")
        try:
            found = await read(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _api_error(f"reading {kind} {name}", exc) from exc
        return self._kube.plain(found)

    async def _set_record_state(self, session_id: str, state: model.RecordState) -> None:
        core, namespace = await self._core()
        try:
            await core.patch_namespaced_config_map(
                model.pod_name(session_id), namespace, {"data": {"state": state}}
            )
        except ApiException as exc:
            raise _api_error(f"marking session {session_id} {state}", exc) from exc

    async def _pods_and_records(self) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        core, namespace = await self._core()
        try:
            pods, records = await asyncio.gather(
                core.list_namespaced_pod(
                    namespace, label_selector=model.session_selector(self._agent_id)
                ),
                core.list_namespaced_config_map(
                    namespace, label_selector=model.record_selector(self._agent_id)
                ),
            )
        except ApiException as exc:
            raise _api_error("listing sessions", exc) from exc
        by_session = {
            _session_of(r): r for r in self._own(self._kube.plain(records).get("items", []))
        }
        return self._own(self._kube.plain(pods).get("items", [])), by_session

    def _own(self, objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Of what the agent's label selects, its own installation's (model.owned)."""
        return [o for o in objects if model.owned(o, installation_id=self.installation_id)]


def _changed(reported: dict[str, tuple[str, str]], observed: ObservedSession) -> bool:
    """Whether to report this: failures, removals and hibernations, each once per spell. Running
    and starting are reported by the commands that start sessions; seeing them ends the spell,
    so the next failure or hibernation is news again."""
    if observed.state not in ("failed", "missing", "hibernated"):
        reported.pop(observed.session_id, None)
        return False
    key = (observed.state, observed.detail)
    if reported.get(observed.session_id) == key:
        return False
    reported[observed.session_id] = key
    return True


def _session_of(obj: dict[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    exact = annotations.get(model.ANNOTATION_SESSION)
    return str(exact or (metadata.get("labels") or {}).get(model.LABEL_SESSION, ""))
