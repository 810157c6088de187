"""The test double's HTTP API: the Kubernetes REST paths the agent uses, with the real server's
status codes and Status bodies, request validation against the official schemas, watches,
ResourceQuota pod counts, and /_test controls for failure injection. A TEST DOUBLE of the
Kubernetes API server (none can be installed on the machines this project is built on).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator
from functools import lru_cache
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support.kubeapi.pods import PodRunner
from tests.support.kubeapi.store import (
    ApiError,
    Key,
    Store,
    Watcher,
    field_matcher,
    json_patch,
    label_matcher,
    merge_patch,
    now,
)

# resource -> (group/version, kind, namespaced)
RESOURCES: dict[str, tuple[str, str, bool]] = {
    "namespaces": ("v1", "Namespace", False),
    "pods": ("v1", "Pod", True),
    "persistentvolumeclaims": ("v1", "PersistentVolumeClaim", True),
    "configmaps": ("v1", "ConfigMap", True),
    "secrets": ("v1", "Secret", True),
    "resourcequotas": ("v1", "ResourceQuota", True),
    "events": ("v1", "Event", True),
    "serviceaccounts": ("v1", "ServiceAccount", True),
    "networkpolicies": ("networking.k8s.io/v1", "NetworkPolicy", True),
    "leases": ("coordination.k8s.io/v1", "Lease", True),
}
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@lru_cache(maxsize=64)
def _validator(version: str, kind: str, api_version: str) -> Any:
    """kubernetes-validate's strict schema for one kind, compiled once: the library itself
    re-reads its multi-megabyte definitions file on every call (about 20 ms a pod)."""
    from jsonschema.validators import Draft202012Validator
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    schema_version = [v for v in utils.all_versions() if utils.major_minor(v) <= version][-1]
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{schema_version}-local-strict"
    try:
        schema = utils.schema_contents(f"{folder}/{kind.lower()}-{group}.json", version)
    except FileNotFoundError:
        return None
    definitions = utils.schema_contents(f"{folder}/_definitions.json", version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return Draft202012Validator(schema, registry=registry)


def _problem(body: dict[str, Any], version: str) -> str | None:
    validator = _validator(version, str(body.get("kind")), str(body.get("apiVersion")))
    if validator is None:
        return None
    error = next(iter(validator.iter_errors(body)), None)
    if error is None:
        return None
    where = ".".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message}"


class Api:
    def __init__(self, *, store: Store, pods: PodRunner, version: str, token: str | None) -> None:
        self.store, self.pods, self.version, self.token = store, pods, version, token

    # -- validation --------------------------------------------------------------------------

    def check(self, resource: str, obj: dict[str, Any]) -> None:
        metadata = obj.get("metadata") or {}
        name = metadata.get("name", "")
        if not NAME.fullmatch(name) or len(name) > 253:
            raise ApiError(
                422, "Invalid", f'{resource} "{name}" is invalid: metadata.name: Invalid value'
            )
        for key, value in (metadata.get("labels") or {}).items():
            if len(str(value)) > 63 or not LABEL_VALUE.fullmatch(str(value)):
                raise ApiError(422, "Invalid", f"metadata.labels: Invalid value: {value!r} ({key})")
        body = {k: v for k, v in obj.items() if k != "status"}
        problem = _problem(body, self.version)
        if problem:
            raise ApiError(422, "Invalid", f'{resource} "{name}" is invalid: {problem}')

    def typed(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        api_version, kind, _ = RESOURCES[resource]
        return {
            **obj,
            "apiVersion": obj.get("apiVersion") or api_version,
            "kind": obj.get("kind") or kind,
        }

    # -- verbs -------------------------------------------------------------------------------

    def namespace_exists(self, namespace: str) -> None:
        self.store.get(("namespaces", "", namespace))

    async def create(self, resource: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        obj = self.typed(resource, body)
        metadata = obj.setdefault("metadata", {})
        if not metadata.get("name") and metadata.get("generateName"):
            metadata["name"] = metadata["generateName"] + __import__("secrets").token_hex(3)
        self.check(resource, obj)
        if namespace:
            self.namespace_exists(namespace)
        key: Key = (resource, namespace, metadata["name"])
        if resource == "pods":
            self.enforce_quota(namespace, metadata["name"])
            obj["status"] = {"phase": "Pending", "conditions": [], "qosClass": "BestEffort"}
        if resource == "namespaces":
            obj["status"] = {"phase": "Active"}
        created = self.store.create(key, obj)
        if resource == "pods":
            self.pods.admit(key)
        return created

    def enforce_quota(self, namespace: str, name: str) -> None:
        used = sum(
            1
            for _, pod in self.store.items("pods", namespace)
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )
        for _, quota in self.store.items("resourcequotas", namespace):
            hard = (quota.get("spec") or {}).get("hard") or {}
            if "pods" in hard and used + 1 > int(hard["pods"]):
                qname = quota["metadata"]["name"]
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: exceeded quota: {qname}, requested: pods=1, '
                    f"used: pods={used}, limited: pods={hard['pods']}",
                )

    async def replace(self, key: Key, body: dict[str, Any]) -> dict[str, Any]:
        obj = self.typed(key[0], body)
        current = self.store.get(key)
        if key[0] == "pods":
            obj["status"] = current.get("status", {})
        self.check(key[0], obj)
        return self.store.replace(key, obj)

    async def patch(self, key: Key, body: Any, content_type: str) -> dict[str, Any]:
        current = copy.deepcopy(self.store.get(key))
        patched = (
            json_patch(current, body)
            if "json-patch" in content_type
            else merge_patch(current, body)
        )
        patched["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return await self.replace(key, patched)

    async def delete(self, key: Key, grace: int | None) -> dict[str, Any]:
        obj = self.store.get(key)
        if key[0] == "pods":
            return await self.pods.delete(key, grace=grace)
        if key[0] == "namespaces":
            for resource in RESOURCES:
                for child, _ in list(self.store.items(resource, key[2])):
                    if resource == "pods":
                        await self.pods.remove(child)
                    elif child in self.store.objects:
                        self.store.delete(child)
            await self.pods.drop_volumes(namespace=key[2])
        if key[0] == "persistentvolumeclaims":
            await self.pods.drop_volumes(namespace=key[1], claim=key[2])
        self.store.delete(key)
        self.collect_dependents(owner=obj, namespace=key[1])
        return obj

    def collect_dependents(self, *, owner: dict[str, Any], namespace: str) -> None:
        """The garbage collector, as far as the agent needs it: objects of the namespace (not
        pods) whose ownerReferences name the deleted object's uid go too."""
        uid = owner["metadata"].get("uid")
        for resource in RESOURCES:
            if resource == "pods":
                continue
            for child, found in list(self.store.items(resource, namespace)):
                owners = found["metadata"].get("ownerReferences") or []
                if any(ref.get("uid") == uid for ref in owners) and child in self.store.objects:
                    self.store.delete(child)

    def listing(self, resource: str, namespace: str | None, params: Any) -> dict[str, Any]:
        labels, fields = (
            label_matcher(params.get("labelSelector")),
            field_matcher(params.get("fieldSelector")),
        )
        items = [
            copy.deepcopy(obj)
            for _, obj in sorted(self.store.items(resource, namespace))
            if labels((obj.get("metadata") or {}).get("labels")) and fields(obj)
        ]
        api_version, kind, _ = RESOURCES[resource]
        return {
            "apiVersion": api_version,
            "kind": f"{kind}List",
            "metadata": {"resourceVersion": str(self.store.rv)},
            "items": items,
        }

    async def watch(
        self, resource: str, namespace: str | None, params: Any
    ) -> AsyncIterator[bytes]:
        watcher = Watcher(
            resource=resource,
            namespace=namespace,
            labels=label_matcher(params.get("labelSelector")),
            fields=field_matcher(params.get("fieldSelector")),
        )
        since = params.get("resourceVersion")
        timeout = float(params.get("timeoutSeconds") or 0) or None
        self.store.watchers.add(watcher)
        try:
            if since and since != "0":
                backlog = self.store.since(int(since), watcher)
            else:
                backlog = [
                    {"type": "ADDED", "object": o}
                    for o in self.listing(resource, namespace, params)["items"]
                ]
            last = max([int(e["object"]["metadata"]["resourceVersion"]) for e in backlog] or [0])
        except ApiError as exc:
            self.store.watchers.discard(watcher)
            yield _line({"type": "ERROR", "object": exc.status()})
            return
        try:
            for event in backlog:
                yield _line(event)
            async with asyncio.timeout(timeout):
                while (event := await watcher.queue.get()) is not None:
                    if int(event["object"]["metadata"]["resourceVersion"]) > last:
                        yield _line(event)
        except TimeoutError:
            return
        finally:
            self.store.watchers.discard(watcher)


def _line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.status(), status_code=exc.code)


def _resource(request: Request) -> tuple[str, str | None, str | None]:
    params = request.path_params
    resource = params["resource"]
    if resource not in RESOURCES:
        raise ApiError(
            404, "NotFound", f"the server could not find the requested resource ({resource})"
        )
    return resource, params.get("namespace"), params.get("name")


def build_app(api: Api) -> Starlette:
    async def collection(request: Request) -> Response:
        resource, namespace, _ = _resource(request)
        if request.method == "POST":
            created = await api.create(resource, namespace or "", await request.json())
            return JSONResponse(created, status_code=201)
        if (request.query_params.get("watch") or "").lower() in ("true", "1"):
            return StreamingResponse(
                api.watch(resource, namespace, request.query_params), media_type="application/json"
            )
        return JSONResponse(api.listing(resource, namespace, request.query_params))

    async def item(request: Request) -> Response:
        resource, namespace, name = _resource(request)
        key: Key = (resource, namespace or "", name or "")
        if request.method == "GET":
            return JSONResponse(api.store.get(key))
        if request.method == "PUT":
            return JSONResponse(await api.replace(key, await request.json()))
        if request.method == "PATCH":
            return JSONResponse(
                await api.patch(key, await request.json(), request.headers.get("content-type", ""))
            )
        grace = request.query_params.get("gracePeriodSeconds")
        body = await request.body()
        if grace is None and body:
            grace = (json.loads(body) or {}).get("gracePeriodSeconds")
        return JSONResponse(await api.delete(key, None if grace is None else int(grace)))

    async def pod_log(request: Request) -> Response:
        key: Key = ("pods", request.path_params["namespace"], request.path_params["name"])
        api.store.get(key)
        tail = int(request.query_params.get("tailLines") or 100)
        return Response(await api.pods.logs(key, tail=tail), media_type="text/plain")

    async def pod_status(request: Request) -> Response:
        return JSONResponse(
            api.store.get(("pods", request.path_params["namespace"], request.path_params["name"]))
        )

    async def control(request: Request) -> Response:
        action = request.path_params["action"]
        namespace, name = (
            request.query_params.get("namespace", ""),
            request.query_params.get("name", ""),
        )
        if action == "compact":
            api.store.compact()
        elif action == "drop-watches":
            api.store.drop_watches()
        elif action == "evict":
            await api.pods.evict(("pods", namespace, name))
        elif action == "node-lost":
            await api.pods.lose_node(("pods", namespace, name))
        else:
            raise ApiError(404, "NotFound", f"no test control {action}")
        return JSONResponse({"ok": True, "resourceVersion": str(api.store.rv)})

    async def discovery(request: Request) -> Response:
        path = request.url.path
        if path == "/version":
            return JSONResponse(
                {
                    "major": "1",
                    "minor": api.version.split(".")[1],
                    "gitVersion": f"v{api.version}.0-streamspace-double",
                }
            )
        if path == "/healthz":
            return Response("ok")
        if path == "/api":
            return JSONResponse({"kind": "APIVersions", "versions": ["v1"]})
        return JSONResponse({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    ns = "/namespaces/{namespace}/{resource}"
    routes = [
        Route("/healthz", discovery),
        Route("/version", discovery),
        Route("/api", discovery),
        Route("/apis", discovery),
        Route("/_test/{action}", control, methods=["POST"]),
        Route("/api/v1/namespaces/{namespace}/pods/{name}/log", pod_log),
        Route("/api/v1/namespaces/{namespace}/pods/{name}/status", pod_status),
        Route("/api/v1/{resource}", collection, methods=["GET", "POST"]),
        Route("/api/v1/{resource}/{name}", item, methods=["GET", "PUT", "PATCH", "DELETE"]),
        Route("/api/v1" + ns, collection, methods=["GET", "POST"]),
        Route("/api/v1" + ns + "/{name}", item, methods=["GET", "PUT", "PATCH", "DELETE"]),
        Route("/apis/{group}/{version}" + ns, collection, methods=["GET", "POST"]),
        Route(
            "/apis/{group}/{version}" + ns + "/{name}",
            item,
            methods=["GET", "PUT", "PATCH", "DELETE"],
        ),
        Route("/apis/{group}/{version}/{resource}", collection, methods=["GET"]),
    ]

    async def guard(request: Request, exc: Exception) -> Response:
        if isinstance(exc, ApiError):
            return _error(exc)
        if isinstance(exc, (ValueError, KeyError, TypeError)):
            return _error(ApiError(400, "BadRequest", f"bad request: {exc}"))
        raise exc

    app = Starlette(
        routes=routes,
        exception_handlers={ApiError: guard, ValueError: guard, KeyError: guard, TypeError: guard},
    )

    if api.token:
        inner = app

        async def auth(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http" and scope["path"] != "/healthz":
                headers = dict(scope["headers"])
                if headers.get(b"authorization", b"").decode() != f"Bearer {api.token}":
                    response = _error(ApiError(401, "Unauthorized", "Unauthorized"))
                    await response(scope, receive, send)
                    return
            await inner(scope, receive, send)

        return auth  # type: ignore[return-value]
    return app


__all__ = ["RESOURCES", "Api", "build_app", "now"]
