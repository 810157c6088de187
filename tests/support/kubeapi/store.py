"""The test double's object store: one etcd-like global resourceVersion, a bounded history of
events for watches to resume from (older than it: 410 Gone), label and field selectors, and
JSON patches. A TEST DOUBLE of the Kubernetes API server's storage, not a real one.
"""

from __future__ import annotations

import asyncio
import copy
import re
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Key = tuple[str, str, str]  # resource, namespace ("" for cluster-scoped), name
HISTORY = 2000
_TERM = re.compile(
    r"^\s*(!?)([A-Za-z0-9./_-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9._-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


class ApiError(Exception):
    """A Kubernetes Status error: HTTP code, reason and message."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    return [t for t in [*terms, current] if t.strip()]


def label_matcher(selector: str | None) -> Any:
    """A predicate over a labels dict; ApiError 400 on a selector the server cannot parse."""
    checks = []
    for term in split_terms(selector or ""):
        found = _TERM.match(term)
        if not found:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        negate, key, op, value, set_op, values = found.groups()
        options = {v.strip() for v in (values or "").split(",") if v.strip()}
        checks.append(
            _check(negate=bool(negate), key=key, op=op or set_op, value=value, options=options)
        )
    return lambda labels: all(check(labels or {}) for check in checks)


def _check(*, negate: bool, key: str, op: str | None, value: str | None, options: set[str]) -> Any:
    if op is None:
        return (lambda labels: key not in labels) if negate else (lambda labels: key in labels)
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == value
    if op == "!=":
        return lambda labels: labels.get(key) != value
    if op == "in":
        return lambda labels: labels.get(key) in options
    return lambda labels: labels.get(key) not in options


def field_matcher(selector: str | None) -> Any:
    checks = []
    for term in split_terms(selector or ""):
        op = "!=" if "!=" in term else "="
        path, _, value = term.replace("==", "=").partition(op)
        checks.append((path.strip().split("."), op, value.strip()))

    def matches(obj: dict[str, Any]) -> bool:
        for path, op, value in checks:
            current: Any = obj
            for part in path:
                current = (current or {}).get(part) if isinstance(current, dict) else None
            if (str(current or "") == value) != (op == "="):
                return False
        return True

    return matches


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (strategic merge is treated the same here)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902: add, replace, remove, test."""
    doc = copy.deepcopy(target)
    for op in operations:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.setdefault(part, {})
        last = parts[-1]
        kind = op["op"]
        if (
            kind == "test"
            and (parent.get(last) if isinstance(parent, dict) else parent[int(last)]) != op["value"]
        ):
            raise ApiError(422, "Invalid", f"test operation failed at {op['path']}")
        if kind in ("add", "replace"):
            if isinstance(parent, list):
                parent.insert(len(parent) if last == "-" else int(last), op["value"])
            else:
                parent[last] = op["value"]
        elif kind == "remove":
            del parent[int(last) if isinstance(parent, list) else last]
    return doc


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str | None
    labels: Any
    fields: Any
    queue: asyncio.Queue[dict[str, Any] | None] = field(default_factory=asyncio.Queue)

    def wants(self, key: Key, obj: dict[str, Any]) -> bool:
        resource, namespace, _ = key
        if resource != self.resource or (
            self.namespace is not None and namespace != self.namespace
        ):
            return False
        return bool(self.labels((obj.get("metadata") or {}).get("labels")) and self.fields(obj))


@dataclass
class Event:
    rv: int
    type: str
    key: Key
    obj: dict[str, Any]


class Store:
    """Objects, the global resourceVersion, the event history and the live watchers."""

    def __init__(self, *, history: int = HISTORY) -> None:
        self.objects: dict[Key, dict[str, Any]] = {}
        self.rv = 0
        self.compacted = 0  # events at or below this resourceVersion are forgotten
        self.history: deque[Event] = deque()
        self.history_limit = history
        self.watchers: set[Watcher] = set()

    def get(self, key: Key) -> dict[str, Any]:
        found = self.objects.get(key)
        if found is None:
            resource, _, name = key
            raise ApiError(404, "NotFound", f'{resource} "{name}" not found')
        return found

    def items(self, resource: str, namespace: str | None) -> Iterator[tuple[Key, dict[str, Any]]]:
        for key, obj in list(self.objects.items()):
            if key[0] == resource and (namespace is None or key[1] == namespace):
                yield key, obj

    def create(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{key[0]} "{key[2]}" already exists')
        metadata = obj.setdefault("metadata", {})
        metadata.update(uid=str(uuid.uuid4()), creationTimestamp=now())
        if key[1]:
            metadata["namespace"] = key[1]
        return self.commit("ADDED", key, obj)

    def replace(self, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        current = self.get(key)
        wanted = (obj.get("metadata") or {}).get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {key[0]} "{key[2]}": the object has been '
                "modified; please apply your changes to the latest version and try again",
            )
        metadata = obj.setdefault("metadata", {})
        for kept in ("uid", "creationTimestamp", "namespace", "deletionTimestamp"):
            if kept in current["metadata"]:
                metadata[kept] = current["metadata"][kept]
        return self.commit("MODIFIED", key, obj)

    def commit(self, kind: str, key: Key, obj: dict[str, Any]) -> dict[str, Any]:
        """Store `obj` at a new resourceVersion and tell the watchers."""
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = obj
        event = Event(rv=self.rv, type=kind, key=key, obj=copy.deepcopy(obj))
        self.history.append(event)
        while len(self.history) > self.history_limit:
            self.compacted = self.history.popleft().rv
        for watcher in list(self.watchers):
            if watcher.wants(key, event.obj):
                watcher.queue.put_nowait({"type": kind, "object": event.obj})
        return copy.deepcopy(obj)

    def delete(self, key: Key) -> dict[str, Any]:
        return self.commit("DELETED", key, copy.deepcopy(self.get(key)))

    def since(self, rv: int, watcher: Watcher) -> list[dict[str, Any]]:
        """Events after `rv` for a resuming watch; 410 Gone when history no longer has them."""
        if rv < self.compacted:
            raise ApiError(410, "Expired", f"too old resource version: {rv} ({self.compacted})")
        return [
            {"type": e.type, "object": e.obj}
            for e in self.history
            if e.rv > rv and watcher.wants(e.key, e.obj)
        ]

    def compact(self) -> None:
        """Forget the whole history (a test control: the next resume from before now is 410)."""
        self.compacted = self.rv
        self.history.clear()

    def drop_watches(self) -> None:
        for watcher in list(self.watchers):
            watcher.queue.put_nowait(None)
