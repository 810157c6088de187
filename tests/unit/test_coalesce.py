"""Calls made in one loop turn share one flush; each caller gets its own answer or the
failure; batch frames split back into the messages that went in."""

from __future__ import annotations

import asyncio

import pytest

from streamspace.agent_hub.coalesce import Coalescer
from streamspace.agent_hub.redis import BATCH_MAGIC, pack_batch, unpack


async def test_calls_in_one_turn_share_a_flush_and_get_their_own_answers() -> None:
    flushes: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushes.append(items)
        await asyncio.sleep(0)
        return [i * 10 for i in items]

    double = Coalescer(flush)
    assert await asyncio.gather(*(double(i) for i in range(5))) == [0, 10, 20, 30, 40]
    assert flushes == [[0, 1, 2, 3, 4]]
    assert await double(7) == 70  # alone: flushed by itself, one turn later
    assert flushes[-1] == [7]


async def test_a_failed_flush_fails_every_caller_of_it() -> None:
    async def flush(items: list[str]) -> list[str]:
        raise ConnectionError("redis went away")

    broken = Coalescer(flush)
    results = await asyncio.gather(broken("a"), broken("b"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)


@pytest.mark.parametrize(
    "messages", [[b'{"type":"ping"}'], [b"a", b"", b'{"x": 1}', bytes(range(256)) * 300]]
)
def test_batch_frames_round_trip(messages: list[bytes]) -> None:
    packed = pack_batch(messages)
    assert packed.startswith(BATCH_MAGIC)
    assert list(unpack(packed)) == messages
    assert list(unpack(messages[0])) == [messages[0]]  # a plain message stays itself
