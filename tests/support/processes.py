"""Real processes for multi-replica tests: `streamspace api` replicas, agents, a private
redis-server and an haproxy load balancer, all on loopback. Each logs to a file to grep."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, *, timeout: float = 20.0, interval: float = 0.1, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what or predicate}")


class Proc:
    def __init__(self, *, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                self.args,
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def logged(self, text: str, *, times: int = 1, timeout: float = 20.0) -> None:
        """Wait until the log shows `text` (at least `times` times): a line is written after
        the state it reports is visible elsewhere (a row committed, a lease taken), so a bare
        read can run ahead of it."""
        deadline = time.monotonic() + timeout
        while self.log().count(text) < times:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} never logged {text!r}; log: {self.log_path}")
            await asyncio.sleep(0.05)

    def send_signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ApiReplica(Proc):
    def __init__(
        self, *, pod: str, env: dict[str, str], log_dir: Path, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        self.pod = pod
        super().__init__(
            name=pod,
            log_dir=log_dir,
            args=[str(VENV_BIN / "streamspace"), "api"],
            env={
                **env,
                "POD_NAME": pod,
                "STREAMSPACE_PORT": str(self.port),
                "STREAMSPACE_HOST": "127.0.0.1",
            },
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ApiReplica:
        super().start()
        wait_until(self.healthy, timeout=60, what=f"{self.pod} /health")
        return self

    def healthy(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"{self.pod} exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False


class RedisServer(Proc):
    def __init__(
        self,
        *,
        log_dir: Path,
        port: int | None = None,
        password: str | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        super().__init__(
            name=f"redis-{self.port}",
            log_dir=log_dir,
            env={},
            args=[
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(log_dir),  # a replica's sync writes an RDB file there
                *(["--requirepass", password] if password else []),
                *(extra or []),
            ],
        )

    def start(self) -> RedisServer:
        super().start()
        wait_until(self.ready, timeout=10, what="redis")
        return self

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False


HAPROXY_CFG = Path(__file__).resolve().parents[2] / "deploy" / "haproxy" / "haproxy.cfg"


def shipped_haproxy_config(port: int, backends: list[ApiReplica]) -> str:
    """deploy/haproxy/haproxy.cfg with only the listen address and the servers the test's."""
    lines = []
    for line in HAPROXY_CFG.read_text().splitlines():
        if line.strip().startswith("bind "):
            line = f"    bind 127.0.0.1:{port}"
        elif line.strip().startswith("server "):
            continue
        lines.append(line)
    lines += [f"    server {b.pod} 127.0.0.1:{b.port}" for b in backends]
    return "\n".join(lines) + "\n"


class LoadBalancer(Proc):
    """haproxy with health checks: what agents and browsers dial in the tests. `shipped`: the
    configuration users get (deploy/haproxy/haproxy.cfg, HTTP mode, retries and redispatch);
    else a bare TCP balancer."""

    def __init__(self, *, backends: list[ApiReplica], log_dir: Path, shipped: bool = False) -> None:
        self.port = free_port()
        config = log_dir / f"haproxy-{self.port}.cfg"
        if shipped:
            config.write_text(shipped_haproxy_config(self.port, backends))
        else:
            servers = "\n".join(
                f"    server {b.pod} 127.0.0.1:{b.port} check inter 500 fall 2 rise 1"
                for b in backends
            )
            config.write_text(f"""global
defaults
    mode tcp
    timeout connect 2s
    timeout client 1h
    timeout server 1h
frontend fe
    bind 127.0.0.1:{self.port}
    default_backend apis
backend apis
    balance roundrobin
    option httpchk GET /health
{servers}
""")
        super().__init__(
            name=f"haproxy-{self.port}",
            log_dir=log_dir,
            env={},
            args=[shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", str(config)],
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LoadBalancer:
        super().start()
        wait_until(lambda: _answers(self.url), timeout=15, what="haproxy")
        return self


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def agent_process(
    *,
    agent_id: str,
    url: str,
    log_dir: Path,
    key_file: Path,
    bootstrap_key: str | None = None,
    extra: dict[str, str] | None = None,
) -> Proc:
    env = {
        "AGENT_ID": agent_id,
        "CONTROL_PLANE_URL": url,
        "PLATFORM": "memory",
        "AGENT_KEY_FILE": str(key_file),
        "HEARTBEAT_INTERVAL": "1",
        "APPROVAL_POLL_INTERVAL": "0.3",
        "RECONNECT_MAX_BACKOFF": "2",
        "POD_NAME": agent_id,
        **(extra or {}),
    }
    if bootstrap_key:
        env["AGENT_BOOTSTRAP_KEY"] = bootstrap_key
    return Proc(
        name=f"agent-{agent_id}-{free_port()}",
        log_dir=log_dir,
        env=env,
        args=[str(VENV_BIN / "streamspace"), "agent"],
    )


NGINX_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nginx"


class Nginx(Proc):
    """nginx with the shipped deploy/nginx config: only the upstream servers, the listen port
    and the UI root are the test's own."""

    def __init__(self, *, backends: list[ApiReplica], ui_dir: Path, log_dir: Path) -> None:
        self.port = free_port()
        work = log_dir / f"nginx-{self.port}"
        work.mkdir(parents=True, exist_ok=True)
        site = (NGINX_DIR / "streamspace.conf").read_text()
        for shipped, ours in (
            ("listen 8080;", f"listen 127.0.0.1:{self.port};"),
            ("root /usr/share/streamspace/ui;", f"root {ui_dir};"),
        ):
            assert shipped in site, f"deploy/nginx/streamspace.conf no longer has {shipped!r}"
            site = site.replace(shipped, ours)
        (work / "streamspace.conf").write_text(site)
        servers = "\n".join(
            f"    server 127.0.0.1:{b.port} max_fails=2 fail_timeout=5s;" for b in backends
        )
        (work / "upstream.conf").write_text(
            f"upstream streamspace_api {{\n    least_conn;\n{servers}\n    keepalive 32;\n}}\n"
        )
        temp = " ".join(
            f"{kind}_temp_path {work / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (work / "nginx.conf").write_text(
            f"""daemon off;
pid {work / "nginx.pid"};
error_log stderr warn;
events {{}}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    {temp}
    include {work / "upstream.conf"};
    include {work / "streamspace.conf"};
}}
"""
        )
        super().__init__(
            name=f"nginx-{self.port}",
            log_dir=log_dir,
            env={},
            args=[shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(work / "nginx.conf")],
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        super().start()
        wait_until(self.ready, timeout=10, what="nginx")
        return self

    def ready(self) -> bool:
        if not self.alive:
            raise RuntimeError(f"nginx exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
