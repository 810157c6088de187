"""Run the Kubernetes API test double: `python -m tests.support.kubeapi --ready-file F`.

Writes its base URL into the ready file once it listens; SIGTERM removes every container and
volume it made. A TEST DOUBLE of kube-apiserver (see tests/support/kubeapi/server.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import socket
from pathlib import Path

import uvicorn

from tests.support.kubeapi.pods import PodRunner
from tests.support.kubeapi.server import Api, build_app
from tests.support.kubeapi.store import Store


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--token", default=None, help="bearer token every request must carry")
    parser.add_argument(
        "--docker-network",
        default=None,
        help="the pods' bridge (default: one of its own, removed at exit)",
    )
    parser.add_argument(
        "--kube-version", default="1.29", help="schemas requests are validated against"
    )
    parser.add_argument(
        "--history", type=int, default=2000, help="events kept for watches to resume"
    )
    return parser.parse_args()


async def serve(args: argparse.Namespace) -> None:
    store = Store(history=args.history)
    instance = secrets.token_hex(4)
    pods = PodRunner(
        store=store, network=args.docker_network or f"kubeapi-{instance}", instance=instance
    )
    await pods.open()
    api = Api(store=store, pods=pods, version=args.kube_version, token=args.token)
    api.store.create(
        ("namespaces", "", "default"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}},
    )
    sock = socket.socket()
    # Accepted sockets inherit it: without, a response written in two parts waits out the
    # client's delayed ACK (about 40 ms a request on a reused connection).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    config = uvicorn.Config(
        build_app(api), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            return
        await asyncio.sleep(0.02)
    args.ready_file.write_text(f"http://127.0.0.1:{sock.getsockname()[1]}\n")
    try:
        await task
    finally:
        store.drop_watches()
        with contextlib.suppress(Exception):
            await pods.close()


if __name__ == "__main__":
    arguments = parse_args()
    asyncio.run(serve(arguments))
