"""A Kubernetes API server TEST DOUBLE for the Kubernetes agent's tests and benches.

No kube-apiserver can be installed on the machines this project is built on, so tests talk
real HTTP (through kubernetes_asyncio, as the agent does) to this double, which enforces what
the agent relies on: one global resourceVersion with optimistic concurrency (a stale replace is
409 Conflict), AlreadyExists/NotFound, label and field selectors, watches that resume from a
resourceVersion and answer 410 Gone past the retained history, ResourceQuota pod counts, and
request bodies validated strictly against the official schemas (kubernetes-validate). Pods it
accepts run as real containers on the local Docker engine; the pod IP is the container's.

Test-only controls (POST, query `namespace` and `name`): `/_test/evict` (phase Failed, reason
Evicted), `/_test/node-lost` (reason NodeLost, Ready False), `/_test/compact` (forget the
history: resuming from before now is 410), `/_test/drop-watches` (end every open watch).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[3]


class KubeApiDouble:
    """The double as a separate process, reachable by every process of a test."""

    def __init__(
        self, *, workdir: Path, token: str = "streamspace-test-token", network: str | None = None
    ) -> None:
        """`network`: the pods' Docker bridge; by default one of the double's own, removed
        when it stops, so that runs never share or remove each other's."""
        self.workdir, self.token, self.network = workdir, token, network
        self.url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 60) -> KubeApiDouble:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "kubeapi.url"
        ready.unlink(missing_ok=True)
        log = (self.workdir / "kubeapi.log").open("wb")
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.kubeapi",
                "--ready-file",
                str(ready),
                "--token",
                self.token,
                *(["--docker-network", self.network] if self.network else []),
            ],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not (ready.exists() and ready.read_text().endswith("\n")):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Kubernetes API double did not start:\n{self.log()[-3000:]}"
                )
            time.sleep(0.05)
        self.url = ready.read_text().strip()
        return self

    def log(self) -> str:
        return (self.workdir / "kubeapi.log").read_text(errors="replace")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": self.token}}],
            "contexts": [
                {
                    "name": "double",
                    "context": {"cluster": "double", "user": "tester", "namespace": namespace},
                }
            ],
            "current-context": "double",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    async def control(self, action: str, *, namespace: str = "", name: str = "") -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            response = await client.post(
                f"/_test/{action}",
                params={"namespace": namespace, "name": name},
                headers={"Authorization": f"Bearer {self.token}"},
            )
            response.raise_for_status()
