"""A bare leadership candidate for tests and bench: `python -m streamspace.leader.candidate LOG`.

Reads the agent's settings from the environment (AGENT_ID, POD_NAME, LEADER_ELECTION_BACKEND,
...). While leader it appends `LEADER <identity> <epoch> <monotonic>` to LOG (argv[1] or
LEADER_LOG_FILE) every 100 ms; SIGTERM or SIGINT releases the lease and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

from streamspace.config.agent import AgentSettings, load_agent_settings
from streamspace.errors import ConfigError
from streamspace.leader.factory import build_elector
from streamspace.leader.loop import LeaderTerm, run_as_leader

BEAT_INTERVAL = 0.1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    log_file = args[0] if args else os.environ.get("LEADER_LOG_FILE")
    if not log_file:
        print("usage: python -m streamspace.leader.candidate LOG_FILE", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(process)d %(name)s %(message)s"
    )
    try:
        settings = load_agent_settings()
    except ConfigError as exc:
        print(f"config error: {exc.message}", file=sys.stderr)
        return 2
    asyncio.run(_run(settings=settings, log_path=Path(log_file)))
    return 0


async def _run(*, settings: AgentSettings, log_path: Path) -> None:
    me = asyncio.current_task()
    assert me is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, me.cancel)
    elector = build_elector(settings)

    async def beat(term: LeaderTerm) -> None:
        await _beat(term=term, identity=settings.pod_name, log_path=log_path)

    try:
        with contextlib.suppress(asyncio.CancelledError):
            await run_as_leader(
                elector=elector,
                work=beat,
                retry_period=settings.retry_period,
                renew_deadline=settings.renew_deadline,
            )
    finally:
        await elector.close()


async def _beat(*, term: LeaderTerm, identity: str, log_path: Path) -> None:
    """Append one line per beat, each stamped before checking that the term still holds."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while True:
            now = time.monotonic()
            if term.still_leader():
                os.write(fd, f"LEADER {identity} {term.epoch} {now:.6f}\n".encode())
            await asyncio.sleep(BEAT_INTERVAL)
    finally:
        os.close(fd)


if __name__ == "__main__":
    sys.exit(main())
