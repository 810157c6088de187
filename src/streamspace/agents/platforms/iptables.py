"""The one place the agent runs `iptables` / `iptables-restore` (asyncio subprocesses). Knows
nothing of sessions: docker_firewall decides the rules. Waits on the xtables lock (`-w`), so
the agent never fails because dockerd is editing the tables at the same moment."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from streamspace.errors import PlatformError

UNAVAILABLE = "network_sealing_unavailable"


@dataclass(frozen=True)
class Outcome:
    """What one iptables call returned."""

    code: int
    out: str
    err: str


class Iptables:
    """Runs the IPv4 iptables tools; `binary` is there for tests that inject failures."""

    def __init__(self, *, binary: str = "iptables", restore_binary: str = "iptables-restore"):
        self._binary = binary
        self._restore_binary = restore_binary

    async def run(self, *args: str) -> Outcome:
        """`iptables -w <args>`; a non-zero exit is returned, not raised (callers check)."""
        return await self._exec([self._binary, "-w", *args], stdin=None)

    async def check(self, *args: str) -> None:
        """`iptables -w <args>`, raising PlatformError when it fails."""
        outcome = await self.run(*args)
        if outcome.code != 0:
            raise _failed(f"iptables {' '.join(args)}", outcome)

    async def restore(self, text: str) -> None:
        """Apply `text` with `iptables-restore --noflush`: one transaction, so a chain is
        never seen half rewritten (an empty chain would let everything through)."""
        outcome = await self._exec([self._restore_binary, "-w", "--noflush"], stdin=text)
        if outcome.code != 0:
            raise _failed("iptables-restore", outcome)

    async def _exec(self, argv: list[str], *, stdin: str | None) -> Outcome:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise PlatformError(
                f"cannot run {argv[0]} ({exc.strerror or exc}): the agent seals session networks "
                "with iptables, so it needs the iptables tools and root (CAP_NET_ADMIN) on the "
                "Docker host; see docs/security.md (SESSION_NETWORK_SEALING)",
                code=UNAVAILABLE,
            ) from exc
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        return Outcome(code=proc.returncode or 0, out=out.decode(), err=err.decode().strip())


def _failed(action: str, outcome: Outcome) -> PlatformError:
    hint = ""
    if "ermission denied" in outcome.err or "must be root" in outcome.err:
        hint = (
            "; the agent needs root (CAP_NET_ADMIN) on the Docker host to seal session "
            "networks, see docs/security.md (SESSION_NETWORK_SEALING)"
        )
        return PlatformError(f"{action} failed: {outcome.err}{hint}", code=UNAVAILABLE)
    return PlatformError(f"{action} failed (exit {outcome.code}): {outcome.err}")
