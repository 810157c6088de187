"""The test double's kubelet: each accepted Pod runs as a real container on the local Docker
engine (image never pulled, env (literal or from a Secret's key), command, user, limits,
capabilities, claims as Docker volumes), on one bridge network so the pod IP answers from
the host; its status follows the container. A TEST DOUBLE: no scheduling, no probes but
TCP readiness, no restarts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import json
import os
from typing import Any

import aiodocker

from tests.support.kubeapi.store import ApiError, Key, Store, now

LABEL = "kubeapi.double"
_QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def memory_bytes(text: str) -> int:
    for suffix, factor in _QUANTITY.items():
        if text.endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(float(text))


def cpu_nanos(text: str) -> int:
    return int(float(text[:-1]) * 1_000_000) if text.endswith("m") else int(float(text) * 1e9)


class PodRunner:
    def __init__(self, *, store: Store, network: str, instance: str) -> None:
        self.store, self.network, self.instance = store, network, instance
        self.docker: aiodocker.Docker | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.containers: dict[Key, str] = {}

    async def open(self) -> None:
        self.docker = aiodocker.Docker()
        try:
            await self.docker.networks.get(self.network)
        except aiodocker.DockerError:
            await self.docker.networks.create(
                {"Name": self.network, "Driver": "bridge", "Labels": {LABEL: "network"}}
            )
        self._spawn(self._follow_exits())

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.docker is None:
            return
        for container in await self._ours():
            with contextlib.suppress(aiodocker.DockerError):
                await container.delete(force=True, v=True)
        await self.drop_volumes()
        with contextlib.suppress(aiodocker.DockerError):
            await (await self.docker.networks.get(self.network)).delete()
        await self.docker.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def admit(self, key: Key) -> None:
        self._spawn(self._run(key))

    # -- status ------------------------------------------------------------------------------

    def _update(self, key: Key, change: Any) -> None:
        """Apply `change(pod)` and commit a MODIFIED event, if the pod still exists."""
        pod = self.store.objects.get(key)
        if pod is None:
            return
        pod = copy.deepcopy(pod)
        change(pod)
        self.store.commit("MODIFIED", key, pod)

    @staticmethod
    def _conditions(
        *, scheduled: bool, ready: bool, reason: str = "", message: str = ""
    ) -> list[dict[str, Any]]:
        stamp = now()
        conditions = [
            {
                "type": "PodScheduled",
                "status": "True" if scheduled else "False",
                "lastTransitionTime": stamp,
            }
        ]
        if not scheduled:
            conditions[0].update(reason=reason or "Unschedulable", message=message)
        conditions.append(
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": stamp}
        )
        return conditions

    def _waiting(self, key: Key, *, reason: str, message: str, image: str) -> None:
        def change(pod: dict[str, Any]) -> None:
            status = pod["status"]
            status["conditions"] = self._conditions(scheduled=True, ready=False)
            status["containerStatuses"] = [
                {
                    "name": "session",
                    "ready": False,
                    "restartCount": 0,
                    "image": image,
                    "imageID": "",
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            ]

        self._update(key, change)

    # -- running -----------------------------------------------------------------------------

    async def _run(self, key: Key) -> None:
        assert self.docker is not None
        pod = self.store.objects[key]
        spec = pod["spec"]
        container = spec["containers"][0]
        image = container["image"]
        missing = await self._missing_claims(key, spec)
        if missing:
            message = f'persistentvolumeclaim "{missing}" not found'
            self._update(
                key,
                lambda p: p["status"].update(
                    conditions=self._conditions(scheduled=False, ready=False, message=message)
                ),
            )
            return
        try:
            config = await self._config(key, spec, container)
        except ApiError as exc:  # a referenced Secret or key is missing: the kubelet waits
            self._waiting(
                key, reason="CreateContainerConfigError", message=exc.message, image=image
            )
            return
        try:
            name = f"kubeapi-{key[1]}-{key[2]}-{pod['metadata']['uid'][:6]}"
            created = await self.docker.containers.create(config, name=name)
        except aiodocker.DockerError as exc:
            if exc.status != 404:  # the engine answers 404 "No such image": never pulled
                self._waiting(
                    key, reason="CreateContainerError", message=str(exc.message), image=image
                )
                return
            message = (
                f'Failed to pull image "{image}": pull access denied, '
                "repository does not exist or may require authorization"
            )
            self._waiting(key, reason="ErrImagePull", message=message, image=image)
            await asyncio.sleep(1)
            self._waiting(
                key,
                reason="ImagePullBackOff",
                message=f'Back-off pulling image "{image}"',
                image=image,
            )
            return
        try:
            self.containers[key] = created.id
            await created.start()
            info = await created.show()
        except aiodocker.DockerError as exc:
            self._waiting(key, reason="CreateContainerError", message=str(exc.message), image=image)
            return
        if key not in self.store.objects:  # deleted while starting
            with contextlib.suppress(aiodocker.DockerError):
                await created.delete(force=True, v=True)
            return
        address = info["NetworkSettings"]["Networks"][self.network]["IPAddress"]
        started = now()

        def running(p: dict[str, Any]) -> None:
            p["status"].update(
                phase="Running",
                podIP=address,
                podIPs=[{"ip": address}],
                hostIP="127.0.0.1",
                startTime=started,
                conditions=self._conditions(scheduled=True, ready=False),
                containerStatuses=[
                    {
                        "name": "session",
                        "ready": False,
                        "restartCount": 0,
                        "started": True,
                        "image": image,
                        "imageID": info["Image"],
                        "containerID": f"docker://{info['Id']}",
                        "state": {"running": {"startedAt": started}},
                    }
                ],
            )

        self._update(key, running)
        await self._await_ready(key, address, container)

    async def _await_ready(self, key: Key, address: str, container: dict[str, Any]) -> None:
        probe = (container.get("readinessProbe") or {}).get("tcpSocket")
        if probe is not None:
            port = probe["port"]
            if isinstance(port, str):
                port = next(
                    p["containerPort"] for p in container.get("ports", []) if p.get("name") == port
                )
            period = float((container.get("readinessProbe") or {}).get("periodSeconds", 1))
            while not await _connects(address, int(port)):
                if (self.store.objects.get(key) or {}).get("status", {}).get("phase") != "Running":
                    return
                await asyncio.sleep(period)  # as the kubelet: one probe per periodSeconds

        def ready(p: dict[str, Any]) -> None:
            if p["status"].get("phase") != "Running":
                return
            p["status"]["conditions"] = self._conditions(scheduled=True, ready=True)
            for status in p["status"].get("containerStatuses", []):
                status["ready"] = True

        self._update(key, ready)

    async def _missing_claims(self, key: Key, spec: dict[str, Any]) -> str | None:
        for volume in spec.get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim and ("persistentvolumeclaims", key[1], claim) not in self.store.objects:
                return str(claim)
        return None

    async def _config(
        self, key: Key, spec: dict[str, Any], container: dict[str, Any]
    ) -> dict[str, Any]:
        pod_security = spec.get("securityContext") or {}
        security = container.get("securityContext") or {}
        uid = security.get("runAsUser", pod_security.get("runAsUser"))
        gid = security.get("runAsGroup", pod_security.get("runAsGroup"))
        host: dict[str, Any] = {
            "NetworkMode": self.network,
            "Mounts": await self._mounts(key, spec, container),
        }
        limits = (container.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            host["Memory"] = memory_bytes(limits["memory"])
        if "cpu" in limits:
            host["NanoCpus"] = cpu_nanos(limits["cpu"])
        if "ALL" in ((security.get("capabilities") or {}).get("drop") or []):
            host["CapDrop"] = ["ALL"]
        if security.get("allowPrivilegeEscalation") is False:
            host["SecurityOpt"] = ["no-new-privileges"]
        if security.get("readOnlyRootFilesystem"):
            host["ReadonlyRootfs"] = True
        if pod_security.get("fsGroup") is not None:
            host["GroupAdd"] = [str(pod_security["fsGroup"])]
        config: dict[str, Any] = {
            "Image": container["image"],
            "Env": [
                f"{e['name']}={self._env_value(key[1], e)}"
                for e in container.get("env") or []
                if "value" in e or "secretKeyRef" in (e.get("valueFrom") or {})
            ],
            "Labels": {LABEL: self.instance, "kubeapi.namespace": key[1], "kubeapi.pod": key[2]},
            "HostConfig": host,
            # The hostname stays Docker's (the container id), unlike a kubelet's (the pod
            # name): Docker's DNS answers for its own names only and forwards the rest
            # upstream, which this sandbox cannot reach, so every lookup of a pod-name
            # hostname by the session's X and VNC servers would wait out a timeout that a
            # cluster's DNS answers at once (measured: about +190 ms per session start).
            "NetworkingConfig": {"EndpointsConfig": {self.network: {"Aliases": [key[2][:63]]}}},
        }
        if container.get("command"):
            config["Entrypoint"] = container["command"]
        if container.get("args"):
            config["Cmd"] = container["args"]
        if uid is not None:
            config["User"] = f"{uid}:{gid}" if gid is not None else str(uid)
        return config

    def _env_value(self, namespace: str, entry: dict[str, Any]) -> str:
        """A literal value, or one key of a Secret (`valueFrom.secretKeyRef`) as the kubelet
        resolves it; ApiError when the Secret or the key is missing."""
        if "value" in entry:
            return str(entry["value"])
        ref = entry["valueFrom"]["secretKeyRef"]
        secret = self.store.objects.get(("secrets", namespace, ref["name"]))
        encoded = (secret or {}).get("data", {}).get(ref["key"])
        if encoded is None:
            raise ApiError(
                404, "NotFound", f'secret "{ref["name"]}" or its key "{ref["key"]}" not found'
            )
        return base64.b64decode(encoded).decode()

    async def _mounts(
        self, key: Key, spec: dict[str, Any], container: dict[str, Any]
    ) -> list[dict[str, Any]]:
        volumes = {v["name"]: v for v in spec.get("volumes") or []}
        mounts = []
        for mount in container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "persistentVolumeClaim" in volume:
                name = await self._claim_volume(
                    key[1], volume["persistentVolumeClaim"]["claimName"], spec
                )
                mounts.append({"Type": "volume", "Source": name, "Target": mount["mountPath"]})
            elif (volume.get("emptyDir") or {}).get("medium") == "Memory":
                size = memory_bytes(volume["emptyDir"].get("sizeLimit", "64Mi"))
                mounts.append(
                    {
                        "Type": "tmpfs",
                        "Target": mount["mountPath"],
                        "TmpfsOptions": {"SizeBytes": size, "Mode": 0o1777},
                    }
                )
            elif "emptyDir" in volume:
                mounts.append({"Type": "volume", "Target": mount["mountPath"]})
        return mounts

    async def _claim_volume(self, namespace: str, claim: str, spec: dict[str, Any]) -> str:
        """A claim's storage: one Docker volume, group-owned by the pod's fsGroup as the
        kubelet would leave it."""
        assert self.docker is not None
        name = f"kubeapi-{self.instance}-{namespace}-{claim}"
        volume = await self.docker.volumes.create(
            {
                "Name": name,
                "Labels": {
                    LABEL: self.instance,
                    "kubeapi.namespace": namespace,
                    "kubeapi.claim": claim,
                },
            }
        )  # type: ignore[no-untyped-call]
        group = (spec.get("securityContext") or {}).get("fsGroup")
        if group is not None:
            info = await volume.show()  # type: ignore[no-untyped-call]
            path = info["Mountpoint"]
            with contextlib.suppress(OSError):
                if os.stat(path).st_gid != group:
                    os.chown(path, -1, int(group))
                    os.chmod(path, 0o2775)
        return name

    # -- ending ------------------------------------------------------------------------------

    async def delete(self, key: Key, *, grace: int | None) -> dict[str, Any]:
        pod = self.store.get(key)
        if (pod.get("metadata") or {}).get("deletionTimestamp") is None:
            self._update(
                key,
                lambda p: p["metadata"].update(
                    deletionTimestamp=now(),
                    deletionGracePeriodSeconds=grace if grace is not None else 30,
                ),
            )
        self._spawn(self._remove(key, grace=30 if grace is None else grace))
        return copy.deepcopy(self.store.objects.get(key, pod))

    async def remove(self, key: Key) -> None:
        """Remove a pod and its container at once (its namespace is going away)."""
        await self._remove(key, grace=0)

    async def _remove(self, key: Key, *, grace: int) -> None:
        assert self.docker is not None
        container_id = self.containers.pop(key, None)
        if container_id is not None:
            with contextlib.suppress(aiodocker.DockerError):
                container = self.docker.containers.container(container_id)
                if grace > 0:
                    await container.stop(t=grace)
                await container.delete(force=True, v=True)
        if key in self.store.objects:
            self.store.delete(key)

    async def _stop_container(self, key: Key) -> None:
        assert self.docker is not None
        container_id = self.containers.pop(key, None)
        if container_id is not None:
            with contextlib.suppress(aiodocker.DockerError):
                await self.docker.containers.container(container_id).delete(force=True, v=True)

    async def evict(self, key: Key) -> None:
        self.store.get(key)
        await self._stop_container(key)

        def evicted(p: dict[str, Any]) -> None:
            p["status"].update(
                phase="Failed", reason="Evicted", message="The node was low on resource: memory."
            )
            p["status"]["conditions"] = self._conditions(scheduled=True, ready=False)
            for status in p["status"].get("containerStatuses", []):
                status.update(
                    ready=False, state={"terminated": {"exitCode": 137, "reason": "Error"}}
                )

        self._update(key, evicted)

    async def lose_node(self, key: Key) -> None:
        self.store.get(key)
        await self._stop_container(key)
        message = f"Node kubeapi-double which was running pod {key[2]} is unresponsive"

        def lost(p: dict[str, Any]) -> None:
            p["status"].update(reason="NodeLost", message=message)
            p["status"]["conditions"] = self._conditions(scheduled=True, ready=False)
            p["status"]["conditions"][-1].update(reason="NodeLost", message=message)

        self._update(key, lost)

    async def _follow_exits(self) -> None:
        """Container deaths (exit, OOM kill) become terminated container states."""
        assert self.docker is not None
        subscriber = self.docker.events.subscribe(
            filters=json.dumps({"label": [f"{LABEL}={self.instance}"], "event": ["die"]})
        )  # type: ignore[no-untyped-call]
        while (event := await subscriber.get()) is not None:
            container_id = (event.get("Actor") or {}).get("ID")
            key = next((k for k, v in self.containers.items() if v == container_id), None)
            if key is None:
                continue
            try:
                info = await self.docker.containers.container(container_id).show()
            except aiodocker.DockerError:
                continue
            self._terminated(key, info["State"])

    def _terminated(self, key: Key, state: dict[str, Any]) -> None:
        code = int(state.get("ExitCode", 0))
        reason = "OOMKilled" if state.get("OOMKilled") else ("Completed" if code == 0 else "Error")

        def ended(p: dict[str, Any]) -> None:
            if p["metadata"].get("deletionTimestamp"):
                return
            p["status"]["phase"] = "Succeeded" if code == 0 else "Failed"
            p["status"]["conditions"] = self._conditions(scheduled=True, ready=False)
            for status in p["status"].get("containerStatuses", []):
                status.update(
                    ready=False,
                    state={"terminated": {"exitCode": code, "reason": reason, "finishedAt": now()}},
                )

        self._update(key, ended)

    async def logs(self, key: Key, *, tail: int) -> str:
        assert self.docker is not None
        container_id = self.containers.get(key)
        if container_id is None:
            raise ApiError(
                400, "BadRequest", f'container "session" in pod "{key[2]}" is waiting to start'
            )
        lines = await self.docker.containers.container(container_id).log(
            stdout=True, stderr=True, tail=tail
        )
        return "".join(lines)

    async def _ours(self) -> list[Any]:
        assert self.docker is not None
        return list(
            await self.docker.containers.list(
                all=True, filters=json.dumps({"label": [f"{LABEL}={self.instance}"]})
            )
        )

    async def drop_volumes(self, *, namespace: str | None = None, claim: str | None = None) -> None:
        assert self.docker is not None
        labels = [f"{LABEL}={self.instance}"]
        if namespace is not None:
            labels.append(f"kubeapi.namespace={namespace}")
        if claim is not None:
            labels.append(f"kubeapi.claim={claim}")
        found = await self.docker.volumes.list(filters={"label": labels})  # type: ignore[no-untyped-call]
        for volume in found.get("Volumes") or []:
            with contextlib.suppress(aiodocker.DockerError):
                await (await self.docker.volumes.get(volume["Name"])).delete()  # type: ignore[no-untyped-call]


async def _connects(host: str, port: int) -> bool:
    try:
        async with asyncio.timeout(0.5):
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True
