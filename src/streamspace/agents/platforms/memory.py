"""An in-memory Platform for tests and demos, with knobs for slow, failing and hanging
operations (JupyterHub-style fake spawner). Sessions are dict entries; nothing runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from streamspace.agents.platforms.base import (
    ObservedSession,
    Platform,
    SessionSpec,
    VncTarget,
    not_running,
)
from streamspace.errors import NotFound, PlatformError


@dataclass(kw_only=True)
class MemoryKnobs:
    delay: float = 0.0  # seconds every operation takes
    fail: set[str] = field(default_factory=set)  # operations that raise PlatformError
    hang: set[str] = field(default_factory=set)  # operations that never finish
    vnc: str | None = None  # "host:port" of a TCP server standing in for every session's VNC
    # the secret that stand-in requires (VNC Authentication); None: it needs none
    vnc_secret: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> MemoryKnobs:
        """From 'delay=0.5,fail=start+wake,hang=stop,vnc=127.0.0.1:5999,vnc_secret=abc'
        (MEMORY_PLATFORM)."""
        knobs = cls()
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, _, value = part.partition("=")
            if key == "delay":
                knobs.delay = float(value)
            elif key == "vnc":
                knobs.vnc = value
            elif key == "vnc_secret":
                knobs.vnc_secret = value or None
            elif key in ("fail", "hang"):
                getattr(knobs, key).update(filter(None, value.split("+")))
            else:
                raise ValueError(f"unknown MEMORY_PLATFORM knob {key!r}")
        return knobs


class MemoryPlatform(Platform):
    name = "memory"

    def __init__(self, *, knobs: MemoryKnobs | None = None, journal: Path | None = None) -> None:
        self.knobs = knobs or MemoryKnobs()
        # Every applied operation is appended to the journal (tests count them), and what
        # others appended is read back before each operation: agent replicas sharing one
        # journal share their sessions, as replicas on one Docker host share its containers.
        self.journal = journal
        self._journal_read = 0  # bytes of the journal already applied to `sessions`
        self.sessions: dict[str, ObservedSession] = {}
        self.calls: list[tuple[str, str]] = []
        self._events: asyncio.Queue[ObservedSession] = asyncio.Queue()

    def _catch_up(self) -> None:
        if self.journal is None or not self.journal.exists():
            return
        with self.journal.open("rb") as handle:
            handle.seek(self._journal_read)
            appended = handle.read()
        whole = appended[: appended.rfind(b"\n") + 1]  # a line still being written waits
        self._journal_read += len(whole)
        for line in whole.decode().splitlines():
            op, _, session_id = line.partition(" ")
            if op == "stop":
                self.sessions.pop(session_id, None)
            elif op == "start" or session_id in self.sessions:  # (a hibernate or wake of an
                # unknown session was refused where it was asked: it creates nothing)
                self._set(session_id, "hibernated" if op == "hibernate" else "running")

    async def _operate(self, op: str, session_id: str) -> None:
        self.calls.append((op, session_id))
        if op in self.knobs.hang:
            await asyncio.Event().wait()
        if self.knobs.delay:
            await asyncio.sleep(self.knobs.delay)
        if op in self.knobs.fail:
            raise PlatformError(f"{op} failed (injected by MemoryPlatform)")
        if self.journal is not None:
            with self.journal.open("a") as handle:
                handle.write(f"{op} {session_id}\n")
            self._catch_up()  # our own line, and any others' before it

    def _set(self, session_id: str, state: str) -> ObservedSession:
        observed = ObservedSession(
            session_id=session_id,
            state=state,  # type: ignore[arg-type]
            vnc_host="127.0.0.1" if state == "running" else None,
            vnc_port=5900 if state == "running" else None,
        )
        self.sessions[session_id] = observed
        return observed

    async def start(self, spec: SessionSpec) -> ObservedSession:
        self._catch_up()
        running = self.sessions.get(spec.session_id)
        if running is not None and running.state == "running":
            return running  # started already (by another replica): as Docker finds it
        await self._operate("start", spec.session_id)
        return self._set(spec.session_id, "running")

    async def stop(self, session_id: str) -> None:
        await self._operate("stop", session_id)
        self.sessions.pop(session_id, None)

    async def hibernate(self, session_id: str) -> None:
        self._catch_up()
        known = session_id in self.sessions
        await self._operate("hibernate", session_id)
        if not known:
            raise NotFound(f"session {session_id} is not on this platform")
        self._set(session_id, "hibernated")

    async def wake(self, session_id: str) -> ObservedSession:
        self._catch_up()
        known = session_id in self.sessions
        await self._operate("wake", session_id)
        if not known:
            raise NotFound(f"session {session_id} is not on this platform")
        return self._set(session_id, "running")

    async def list_sessions(self) -> list[ObservedSession]:
        self._catch_up()
        return list(self.sessions.values())

    async def watch(self) -> AsyncIterator[ObservedSession]:
        while True:
            yield await self._events.get()

    def crash(self, session_id: str, detail: str = "exited unexpectedly") -> None:
        """Simulate a session dying on its own."""
        observed = ObservedSession(session_id=session_id, state="failed", detail=detail)
        self.sessions[session_id] = observed
        self._events.put_nowait(observed)

    async def vnc_address(self, session_id: str) -> tuple[str, int]:
        observed = self.sessions.get(session_id)
        if observed is None:
            raise NotFound(f"session {session_id} is not on this platform")
        if observed.state != "running":
            raise not_running(session_id, observed.state)
        if self.knobs.vnc is None:
            raise PlatformError("the memory platform has no VNC server for this session")
        host, _, port = self.knobs.vnc.rpartition(":")
        return host, int(port)

    async def vnc_target(self, session_id: str) -> VncTarget:
        host, port = await self.vnc_address(session_id)
        return VncTarget(host=host, port=port, secret=self.knobs.vnc_secret)
