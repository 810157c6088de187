"""Agent replicas sharing one memory-platform journal share their sessions, as replicas on one
Docker host share its containers: what one did, the other finds, and does not do again."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamspace.agents.platforms.base import SessionSpec
from streamspace.agents.platforms.memory import MemoryPlatform
from streamspace.errors import NotFound


def spec(session_id: str) -> SessionSpec:
    return SessionSpec(session_id=session_id, user="u", template="t", image="i")


async def test_a_replica_finds_what_the_other_did_and_does_not_repeat_it(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    old, new = MemoryPlatform(journal=journal), MemoryPlatform(journal=journal)
    await old.start(spec("s1"))
    await old.start(spec("s2"))
    await old.hibernate("s2")
    observed = {s.session_id: s.state for s in await new.list_sessions()}
    assert observed == {"s1": "running", "s2": "hibernated"}
    assert (await new.start(spec("s1"))).state == "running"  # found running: not started again
    await new.stop("s1")
    assert journal.read_text().splitlines() == ["start s1", "start s2", "hibernate s2", "stop s1"]
    assert [s.session_id for s in await old.list_sessions()] == ["s2"]


async def test_hibernating_or_waking_an_unknown_session_creates_nothing(tmp_path: Path) -> None:
    journal = tmp_path / "journal.txt"
    one, other = MemoryPlatform(journal=journal), MemoryPlatform(journal=journal)
    with pytest.raises(NotFound):
        await one.hibernate("ghost")
    with pytest.raises(NotFound):
        await one.wake("ghost")
    assert await one.list_sessions() == [] and await other.list_sessions() == []
