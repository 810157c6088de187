"""Users working while the control plane changes under them (replicas scaled, Redis or
PostgreSQL restarted): loops taking sessions through their life over the API, and viewers
reading the pattern stream, with everything they were answered and saw, to assert on."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.support.cluster import eventually
from tests.support.pattern import read_pattern

RETRY_PAUSE = 0.2  # a client's pause before it retries a refused request


@dataclass(frozen=True)
class Answer:
    """One HTTP answer a loop got: when it was asked (monotonic), how long it took."""

    via: str  # the base URL asked
    what: str  # "create", "delete" or "get"
    at: float
    seconds: float
    status: int
    code: str  # the error body's code, "" for a success

    @property
    def ok(self) -> bool:
        return self.status < 400


@dataclass
class Viewer:
    """What one viewer got: bytes checked against the pattern, the causes of its socket
    closing (empty: the socket lived throughout), and when each read ended."""

    base: str
    viewed: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    reads: list[float] = field(default_factory=list)

    def record(self, started: float, n: int, failed: str) -> None:
        self.viewed += n
        if n:
            self.reads.append(time.monotonic())
        if failed:
            self.drops[failed] += 1

    def longest_gap(self, since: float, until: float) -> float:
        """The longest time without a checked read between `since` and `until`."""
        marks = [since, *(t for t in self.reads if since < t < until), until]
        return max(b - a for a, b in itertools.pairwise(marks))


@dataclass
class Traffic:
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    outcomes: Counter[str] = field(default_factory=Counter)  # "create 202", "delete 503", ...
    answers: list[Answer] = field(default_factory=list)  # every answer, polls included
    sessions: list[str] = field(default_factory=list)  # created, then deleted once running
    viewers: list[Viewer] = field(default_factory=list)

    @property
    def viewed(self) -> int:
        return sum(v.viewed for v in self.viewers)

    def refused(self, via: str | None = None) -> list[Answer]:
        return [a for a in self.answers if not a.ok and via in (None, a.via)]

    def view(
        self, base: str, sid: str, headers: dict[str, str], **options: Any
    ) -> Coroutine[Any, Any, None]:
        """A viewer of `sid` through `base` until `stop` (tests.support.pattern.read_pattern
        and its options), its reads recorded in a new entry of `viewers`."""
        viewer = Viewer(base)
        self.viewers.append(viewer)
        return read_pattern(base, sid, headers, stop=self.stop, record=viewer.record, **options)


async def progress(
    traffic: Traffic,
    users: list[asyncio.Task[None]],
    when: str,
    *,
    sessions: int = 2,
    viewed: int = 1 << 20,
    timeout: float = 60,
) -> None:
    """The users get further: `sessions` more sessions through their life, and every viewer
    `viewed` bytes more."""
    done, seen = len(traffic.sessions), [v.viewed for v in traffic.viewers]

    async def further() -> bool:
        for task in users:
            if task.done():
                task.result()  # a user's failure shows as itself, not as a timeout
        return len(traffic.sessions) >= done + sessions and all(
            v.viewed >= before + viewed for v, before in zip(traffic.viewers, seen, strict=True)
        )

    await eventually(further, timeout=timeout, what=f"users making progress {when}")


async def session_loop(
    base: str,
    headers: dict[str, str],
    traffic: Traffic,
    *,
    retry: bool = False,
    start_timeout: float = 30,
) -> None:
    """Create a session through `base`, wait until it runs, delete it; again, until `stop`.
    With `retry`, a 503 (a service out, "retry shortly") is asked again after RETRY_PAUSE, as
    a client would, until it is answered; without, a refused create starts the next round.
    Polls answered 503 are polled again either way."""
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:

        async def ask(what: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
            while True:
                started = time.monotonic()
                r = await http.request(method, path, **kwargs)
                code = "" if r.status_code < 400 else _error_code(r)
                traffic.answers.append(
                    Answer(base, what, started, time.monotonic() - started, r.status_code, code)
                )
                if what != "get":
                    traffic.outcomes[f"{what} {r.status_code}"] += 1
                if not (r.status_code == 503 and (retry or what == "get")):
                    return r
                await asyncio.sleep(RETRY_PAUSE)

        while not traffic.stop.is_set():
            r = await ask("create", "POST", "/api/v1/sessions", json={"template": "terminal"})
            if r.status_code != 202:
                continue
            sid = r.json()["id"]

            async def running(sid: str = sid) -> bool:
                r = await ask("get", "GET", f"/api/v1/sessions/{sid}")
                state = r.json()["state"]
                if state not in ("pending", "starting", "running"):
                    pytest.fail(f"session {sid} went {state}")  # at once, not at the timeout
                return bool(state == "running")

            await eventually(
                running, timeout=start_timeout, interval=0.05, what=f"session {sid} running"
            )
            await ask("delete", "DELETE", f"/api/v1/sessions/{sid}")
            traffic.sessions.append(sid)


def _error_code(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return f"not JSON: {r.text[:80]!r}"
