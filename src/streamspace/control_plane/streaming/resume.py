"""The viewer's end of a resumable stream: the replica holding the browser's socket.

It counts the agent's bytes it has written to the viewer (`delivered`, acknowledged to the
agent every ACK_EVERY bytes) and keeps the viewer's bytes until the agent acknowledges them.
When its source (the agent's stream on this replica, or the peer link to the replica holding
the agent) is lost because the agent's connection or that replica went away, it opens a new
one wherever the agent is now, resuming from `delivered`, sends again what the agent did not
get, and goes on: the viewer sees a pause, not a new RFB handshake. A source that cannot be
resumed (the agent restarted, or the grace ran out) ends the viewer's socket as before, and the
viewer page reconnects from scratch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from streamspace.control_plane.streaming.streams import Data, Passthrough, Viewer
from streamspace.errors import Unavailable
from streamspace.protocol.streams import ACK_EVERY, race

log = logging.getLogger(__name__)
RESUME_TIMEOUT = 20.0  # within the agent's STREAM_RESUME_GRACE (default 30 s)
NOT_RESUMABLE = "stream_not_resumable"


class Source(Protocol):
    """Where the agent's bytes come from: `streams.AgentStream` or a peer link."""

    close_reason: str
    lost: bool  # ended because the agent's connection or the holding replica went away
    on_ack: Callable[[int], None] | None

    @property
    def resumable(self) -> bool: ...
    @property
    def input_received(self) -> int:
        """Viewer bytes the agent had when this source opened."""

    async def recv(self) -> Data | None: ...
    def consumed(self, n: int) -> None: ...
    async def send(self, data: bytes) -> bool: ...
    def ack(self, delivered: int) -> None: ...


@dataclass
class Opened:
    source: Source
    close: Callable[[], None]
    direct: Passthrough | None = None  # the source's direct path to the viewer, if it has one


# resume_from: None opens a new stream; a byte count resumes the stream kept under the token
OpenSource = Callable[[int | None], Awaitable[Opened]]


class ViewerEnd:
    def __init__(
        self,
        viewer: Viewer,
        *,
        on_input: Callable[[int], None] | None = None,
        on_resume: Callable[[bool], None] | None = None,
    ) -> None:
        self.viewer = viewer
        self.on_input = on_input
        self.on_resume = on_resume  # called with each resume's outcome (True: resumed)
        self.delivered = 0
        self.resumes = 0
        self._acked = 0
        self._source: Source | None = None
        self._input = bytearray()  # viewer bytes from _input_start on, not yet acknowledged
        self._input_start = 0  # the agent has every viewer byte before this
        self._viewer_gone = False

    async def run(self, open_source: OpenSource) -> str:
        """Relay until the viewer leaves or the stream ends for good; returns the reason.
        Raises Unavailable when the first source cannot be opened or a lost one cannot be
        resumed in time."""
        opened = await open_source(None)
        try:
            while True:
                reason = await self._relay(opened)
                source = opened.source
                if self._viewer_gone or not (source.lost and source.resumable):
                    if source.lost:  # the viewer should reconnect, not give up
                        raise Unavailable(reason, code="peer_unreachable")
                    return reason
                opened.close()
                log.info("stream lost (%s); resuming at byte %d", reason, self.delivered)
                try:
                    opened = await self._reopen(open_source, reason)
                except Unavailable as exc:
                    log.info("stream not resumed: %s", exc.message)
                    self._resumed(False)
                    raise
                self.resumes += 1
                self._resumed(True)
        finally:
            opened.close()

    def _resumed(self, ok: bool) -> None:
        if self.on_resume is not None:
            self.on_resume(ok)

    async def _reopen(self, open_source: OpenSource, reason: str) -> Opened:
        deadline = time.monotonic() + RESUME_TIMEOUT
        delay = 0.05
        while True:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.1)):
                    opened = await open_source(self.delivered)
            except (Unavailable, TimeoutError) as exc:
                detail = exc.message if isinstance(exc, Unavailable) else "timed out"
                final = isinstance(exc, Unavailable) and exc.code == NOT_RESUMABLE
                if final or time.monotonic() >= deadline:
                    raise Unavailable(
                        f"{reason}; the stream could not be resumed: {detail}",
                        code="peer_unreachable",
                    ) from exc
                await asyncio.sleep(delay)  # the agent is still on its way to a replica
                delay = min(delay * 2, 0.2)
                continue
            source = opened.source
            if source.resumable and self._input_start <= source.input_received <= self._input_end:
                return opened
            opened.close()
            if source.lost and time.monotonic() < deadline:
                await asyncio.sleep(delay)  # that replica went away before the stream opened
                continue
            raise Unavailable(f"{reason}; the stream could not be resumed", code="peer_unreachable")

    # -- one source ------------------------------------------------------------------------

    def _send_now(self, data: Data) -> bool:
        if self.viewer.send_now(data):
            self._delivered(len(data))
            return True
        return False

    def _delivered(self, n: int) -> None:
        self.delivered += n
        if self.delivered - self._acked >= ACK_EVERY and self._source is not None:
            self._acked = self.delivered
            self._source.ack(self.delivered)

    @property
    def _input_end(self) -> int:
        return self._input_start + len(self._input)

    def _input_acked(self, total: int) -> None:
        if self._input_start < total <= self._input_end:
            del self._input[: total - self._input_start]
            self._input_start = total

    def _unacked_input(self, since: int) -> bytes:
        return bytes(self._input[since - self._input_start :])

    async def _relay(self, opened: Opened) -> str:
        source = self._source = opened.source
        source.on_ack = self._input_acked
        if opened.direct is not None:
            opened.direct.sink = self._send_now
        again = self._unacked_input(source.input_received) if source.resumable else b""
        if source.resumable:
            self._acked = self.delivered

        ended = asyncio.Event()

        async def to_viewer() -> str:
            try:
                while (chunk := await source.recv()) is not None:
                    await self.viewer.send_bytes(chunk)
                    source.consumed(len(chunk))
                    self._delivered(len(chunk))
                return source.close_reason or "stream closed"
            finally:
                ended.set()

        async def to_agent() -> str:
            if again and not await source.send(again):
                return source.close_reason or "stream closed"
            while (data := await self.viewer.receive_bytes()) is not None:
                if self.on_input is not None:
                    self.on_input(len(data))
                if source.resumable:  # kept until the agent has it
                    self._input += data
                if not await source.send(data):
                    # The source is ending: let to_viewer finish by itself rather than be
                    # cancelled mid-write, which could leave `delivered` short of what the
                    # viewer got (and a resume would send those bytes twice).
                    await ended.wait()
                    return source.close_reason or "stream closed"
            self._viewer_gone = True
            return "viewer disconnected"

        try:
            return await race(to_viewer(), to_agent())
        except Exception as exc:  # the viewer socket died mid-send: end this stream only
            self._viewer_gone = True
            return f"relay error: {exc}"
        finally:
            self._source = None
