"""The scalability guide's verification steps against a running deploy/compose stack: one
PASS/FAIL line per check, exit status 1 when any failed. Run by deploy/compose/verify.sh with
the project's venv (httpx, redis); reads the stack's env file, changes nothing but one session."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx
import redis

T = TypeVar("T")
REPLICAS = ("api-1", "api-2", "api-3")
AGENTS = ("agent-1", "agent-2")
GUIDE_METRICS = (
    "streamspace_agents_connected",
    "streamspace_sessions_active",
    "streamspace_commands_dispatched_total",
    "streamspace_commands_failed_total",
)
REDIS_LOG_LINES = (
    "Redis cache enabled and connected",
    "AgentHub Redis connected - multi-pod support enabled",
)
SESSION_TIMEOUT = 180.0  # s: a session container's start on a busy machine


class CheckFailed(Exception):
    """A check's expectation did not hold; the message says what was seen."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def eventually(check: Callable[[], T | None], *, what: str, timeout: float = 60.0) -> T:
    """Poll `check` until it returns something truthy (conditions, not fixed sleeps)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except (httpx.HTTPError, CheckFailed, redis.RedisError) as exc:
            last = exc
        time.sleep(0.5)
    raise CheckFailed(f"no {what} within {timeout:.0f} s (last: {last!r})")


def read_env(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key.strip(): value for key, value in pairs if not key.startswith("#")}


def docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise CheckFailed(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Stack:
    """Addresses, secrets and containers of one stack, from its env file."""

    env: dict[str, str]
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=15))

    @property
    def agent_id(self) -> str:
        return self.env["AGENT_ID"]

    @property
    def lb(self) -> str:
        return f"http://127.0.0.1:{self.env['LB_PORT']}"

    @property
    def ui(self) -> str:
        return f"http://127.0.0.1:{self.env['UI_PORT']}"

    def get_json(self, url: str, headers: dict[str, str] | None = None) -> Any:
        """GET a JSON answer; anything but 200 (haproxy's 503 page, say) fails the check."""
        r = self.client.get(url, headers=headers)
        expect(r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:300]!r}")
        return r.json()

    def replica(self, service: str) -> str:
        return f"http://127.0.0.1:{self.env[service.upper().replace('-', '_') + '_PORT']}"

    def redis(self, db: int) -> redis.Redis:
        port = int(self.env["REDIS_HOST_PORT"])
        password = self.env["REDIS_PASSWORD"]
        return redis.Redis(port=port, password=password, db=db, decode_responses=True)

    def container(self, service: str) -> str:
        project = self.env["COMPOSE_PROJECT_NAME"]
        ids = docker(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}",
            "--filter", f"label=com.docker.compose.service={service}",
        ).split()  # fmt: skip
        expect(ids, f"no container for service {service}")
        return ids[0]

    def logs(self, service: str) -> str:
        done = subprocess.run(
            ["docker", "logs", self.container(service)], capture_output=True, text=True
        )
        return done.stdout + done.stderr


@dataclass
class Report:
    """Runs checks, prints one line each, counts failures."""

    failed: list[str] = field(default_factory=list)

    def check(self, name: str, run: Callable[[], T]) -> T | None:
        try:
            result = run()
        except (CheckFailed, httpx.HTTPError, redis.RedisError, KeyError, ValueError) as exc:
            print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            self.failed.append(name)
            return None
        detail = f": {result}" if isinstance(result, str) and result else ""
        print(f"PASS {name}{detail}", flush=True)
        return result


def pod(service: str) -> str:
    return f"streamspace-{service}"


# -- the replicas ----------------------------------------------------------------------------


def replica_health(stack: Stack, service: str) -> str:
    body = stack.get_json(f"{stack.replica(service)}/health")
    expect(body.get("status") == "ok", f"/health: {body}")
    expect(body.get("pod_name") == pod(service), f"/health pod_name: {body}")
    return f"pod_name {body['pod_name']}, version {body.get('version')}"


def replica_ready(stack: Stack, service: str) -> str:
    r = stack.client.get(f"{stack.replica(service)}/ready")
    body = r.json()
    expect(r.status_code == 200 and body.get("status") == "ok", f"/ready {r.status_code}: {body}")
    checks = body.get("checks", {})
    expect(set(checks) == {"database", "redis", "hub"}, f"/ready checks: {checks}")
    expect(all(v == "ok" for v in checks.values()), f"/ready checks: {checks}")
    return ", ".join(f"{k} {v}" for k, v in checks.items())


def replica_redis_logs(stack: Stack, service: str) -> str:
    logs = stack.logs(service)
    missing = [line for line in REDIS_LOG_LINES if line not in logs]
    expect(not missing, f"log lacks {missing}")
    return " / ".join(f'"{line}"' for line in REDIS_LOG_LINES)


def replica_uses_pgbouncer(stack: Stack, service: str) -> str:
    env = json.loads(
        docker("inspect", "--format", "{{json .Config.Env}}", stack.container(service))
    )
    settings = dict(item.split("=", 1) for item in env)
    expect("@pgbouncer:6432/" in settings.get("DATABASE_URL", ""), "DATABASE_URL not PgBouncer")
    expect(settings.get("DB_PGBOUNCER") == "true", "DB_PGBOUNCER is not true")
    return "DATABASE_URL -> pgbouncer:6432, DB_PGBOUNCER=true"


def pgbouncer_transaction_mode(stack: Stack) -> str:
    ini = docker("exec", stack.container("pgbouncer"), "cat", "/run/stack-service/pgbouncer.ini")
    expect(re.search(r"^pool_mode = transaction$", ini, re.M), f"pgbouncer.ini:\n{ini}")
    return "pool_mode = transaction"


# -- load balancer, UI, login ----------------------------------------------------------------


def lb_spreads(stack: Stack) -> str:
    """Guide *Test 3*: repeated /health through the load balancer shows different replicas.
    (leastconn: the replica holding the agent's WebSocket is picked only under concurrency.)"""
    seen: set[str] = set()
    for _ in range(30):
        with httpx.Client(timeout=5) as fresh:  # a new connection each time
            r = fresh.get(f"{stack.lb}/health")
            expect(r.status_code == 200, f"/health via haproxy: {r.status_code} {r.text[:300]!r}")
            seen.add(r.json()["pod_name"])
        if len(seen) >= 2:
            return ", ".join(sorted(seen))
    raise CheckFailed(f"only {sorted(seen)} answered through haproxy")


HAPROXY_STAT = """
import socket
s = socket.socket(socket.AF_UNIX)
s.connect("/run/haproxy/admin.sock")
s.sendall(b"show stat\\n")
print(b"".join(iter(lambda: s.recv(65536), b"")).decode())
"""


def lb_servers_up(stack: Stack) -> str:
    """haproxy's runtime API: every running replica is UP (its /ready checks pass)."""
    csv = docker("exec", stack.container("haproxy"), "python3", "-c", HAPROXY_STAT)
    status = {
        row[1]: row[17] for row in (line.split(",") for line in csv.splitlines()) if len(row) > 17
    }
    down = {s: status.get(s) for s in REPLICAS if status.get(s) != "UP"}
    expect(not down, f"not UP in backend streamspace_api: {down}")
    return ", ".join(f"{s} {status[s]}" for s in sorted(status) if s.startswith("api-"))


def ui_serves_app(stack: Stack) -> str:
    page = stack.client.get(f"{stack.ui}/")
    expect(page.status_code == 200 and "<html" in page.text.lower(), f"/ -> {page.status_code}")
    route = stack.client.get(f"{stack.ui}/sessions")  # a client-side route
    expect(route.text == page.text, "/sessions is not the SPA's index.html")
    health = stack.get_json(f"{stack.ui}/health")
    return f"index.html, /sessions, /health via haproxy from {health['pod_name']}"


def login(stack: Stack, base: str) -> dict[str, str]:
    body = {"username": "admin", "password": stack.env["STREAMSPACE_ADMIN_PASSWORD"]}
    r = stack.client.post(f"{base}/api/v1/auth/login", json=body)
    expect(r.status_code == 200, f"login {r.status_code}: {r.text[:200]}")
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


# -- the agent -------------------------------------------------------------------------------


def agent_online(stack: Stack, admin: dict[str, str]) -> dict[str, Any]:
    def online() -> dict[str, Any] | None:
        for agent in stack.get_json(f"{stack.lb}/api/v1/agents", headers=admin):
            if agent["id"] == stack.agent_id and agent["status"] == "online":
                return agent  # type: ignore[no-any-return]
        return None

    agent = eventually(online, what=f"agent {stack.agent_id} online")
    expect(agent["pod_name"] in {pod(s) for s in REPLICAS}, f"pod_name {agent['pod_name']}")
    return agent


def agent_registered_log(stack: Stack, holder: str) -> str:
    region = stack.env["REGION"]
    line = f"[AgentHub] Agent registered: {stack.agent_id} (platform: docker, region: {region})"
    expect(line in stack.logs(holder.removeprefix("streamspace-")), f"{holder}'s log lacks it")
    return f'{holder}: "{line}"'


def hub_keys(stack: Stack, holder: str) -> str:
    hub = stack.redis(1)
    key = f"agent:{stack.agent_id}:pod"
    expect(hub.get(key) == holder, f"GET {key} = {hub.get(key)!r}, API says {holder}")
    connected = f"agent:{stack.agent_id}:connected"
    ttl = int(hub.ttl(connected))
    expect(0 < ttl <= 300, f"TTL {connected} = {ttl}")
    return f"DB 1: {key} = {holder}, TTL {connected} = {ttl} s"


def command_channels(stack: Stack) -> str:
    channels = set(stack.redis(1).pubsub_channels("pod:*:commands"))
    wanted = {f"pod:{pod(s)}:commands" for s in REPLICAS}
    expect(wanted <= channels, f"PUBSUB CHANNELS: {sorted(channels)}")
    return ", ".join(sorted(wanted))


def leader_key(stack: Stack) -> str:
    db0 = stack.redis(0)
    key = f"streamspace:agent:leader:{stack.agent_id}"
    value = db0.get(key)
    expect(value, f"GET {key}: no leader")
    lease = json.loads(str(value))
    holder, epoch = lease["holder"], lease["epoch"]
    expect(holder in {pod(a) for a in AGENTS}, f"holder {holder}")
    ttl = int(db0.ttl(key))
    expect(0 < ttl <= 15, f"TTL {key} = {ttl}")
    line = f"leader election: became leader of {stack.agent_id} (epoch {epoch})"
    expect(line in stack.logs(holder.removeprefix("streamspace-")), f"{holder}'s log lacks {line}")
    return f"{key} -> {holder} (epoch {epoch}), TTL {ttl} s; its log: {line}"


def ping_via(stack: Stack, admin: dict[str, str], service: str, holder: str) -> str:
    url = f"{stack.replica(service)}/api/v1/admin/agents/{stack.agent_id}/ping"
    r = stack.client.post(url, headers=admin)
    expect(r.status_code == 200, f"ping {r.status_code}: {r.text[:200]}")
    body = r.json()
    route = "local" if pod(service) == holder else "cross_pod"
    expect(body["replica"] == pod(service) and body["route"] == route, f"ping: {body}")
    return f"{body['route']} in {body['rttMs']} ms"


# -- a session through the load balancer ------------------------------------------------------


def session_state(stack: Stack, admin: dict[str, str], sid: str) -> str:
    return str(stack.get_json(f"{stack.lb}/api/v1/sessions/{sid}", headers=admin)["state"])


def session_containers(stack: Stack, sid: str) -> list[str]:
    label = f"label=streamspace.session={sid}"
    return docker(
        "ps", "-q", "--filter", label, "--filter", f"label=streamspace.agent={stack.agent_id}"
    ).split()


def start_session(stack: Stack, admin: dict[str, str], base: str) -> str:
    r = stack.client.post(f"{base}/api/v1/sessions", headers=admin, json={"template": "terminal"})
    expect(r.status_code == 202, f"create via {base}: {r.status_code}: {r.text[:200]}")
    return str(r.json()["id"])


def stop_session(stack: Stack, admin: dict[str, str], base: str, sid: str) -> None:
    r = stack.client.delete(f"{base}/api/v1/sessions/{sid}", headers=admin)
    expect(r.status_code == 202, f"delete via {base}: {r.status_code}: {r.text[:200]}")


def session_lifecycle(stack: Stack, admin: dict[str, str]) -> str:
    started = time.monotonic()
    sid = start_session(stack, admin, stack.lb)
    try:
        wait_state(stack, admin, sid, "running", timeout=SESSION_TIMEOUT)
        expect(session_containers(stack, sid), f"no running container for session {sid}")
        ran = time.monotonic() - started
    finally:
        stop_session(stack, admin, stack.lb, sid)
    wait_state(stack, admin, sid, "terminated", timeout=60)
    eventually(lambda: not session_containers(stack, sid), what="container removed", timeout=30)
    return f"session {sid}: running after {ran:.1f} s, deleted, container gone"


def sessions_via_every_replica(stack: Stack, admin: dict[str, str]) -> str:
    """Commands from every replica: a session started on each one and stopped on the next, so
    the replicas not holding the agent publish theirs to its replica's pod channel."""
    bases = [stack.replica(s) for s in REPLICAS]
    sids = [start_session(stack, admin, base) for base in bases]
    try:
        for sid in sids:
            wait_state(stack, admin, sid, "running", timeout=SESSION_TIMEOUT)
    finally:
        for i, sid in enumerate(sids):
            stop_session(stack, admin, bases[(i + 1) % len(bases)], sid)
    for sid in sids:
        wait_state(stack, admin, sid, "terminated", timeout=60)
    return "started on api-1, api-2, api-3; stopped on api-2, api-3, api-1"


def wait_state(stack: Stack, admin: dict[str, str], sid: str, state: str, timeout: float) -> None:
    def reached() -> bool:
        now = session_state(stack, admin, sid)
        expect(now not in {"failed"} or state == "failed", f"session {sid} failed")
        return now == state

    eventually(reached, what=f"session {sid} {state}", timeout=timeout)


# -- metrics -----------------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for match in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(2))
    return total


def replica_metrics(stack: Stack, service: str, holder: str) -> str:
    text = stack.client.get(f"{stack.replica(service)}/api/v1/metrics").text
    # A labelled metric without samples yet (no session running) is still declared: # TYPE.
    missing = [m for m in GUIDE_METRICS if not re.search(rf"^# TYPE {m} ", text, re.M)]
    expect(not missing, f"missing {missing}")
    expect(metric(text, "streamspace_agents_connected") >= 1, "streamspace_agents_connected < 1")
    if pod(service) == holder:
        # Each of the two other replicas sent a start and a stop through this one.
        got = metric(text, "streamspace_commands_dispatched_total", route="cross_pod")
        expect(got >= 4, f'commands_dispatched_total{{route="cross_pod"}} = {got}')
        return f"guide metrics present; holds the agent, {got:.0f} command(s) sent for others"
    got = metric(text, "streamspace_cross_pod_commands_total", side="received")
    expect(got >= 2, f'cross_pod_commands_total{{side="received"}} = {got}')
    line = f"for agent {stack.agent_id} to pod:{holder}:commands"
    expect(line in stack.logs(service), f'log lacks "Published command ... {line}"')
    return f"guide metrics present; {got:.0f} command(s) published to {holder} (logged)"


def run(stack: Stack) -> Report:
    report = Report()
    for service in REPLICAS:
        report.check(f"{service} /health", partial(replica_health, stack, service))
        report.check(f"{service} /ready", partial(replica_ready, stack, service))
        report.check(f"{service} Redis log lines", partial(replica_redis_logs, stack, service))
        report.check(
            f"{service} database via PgBouncer", partial(replica_uses_pgbouncer, stack, service)
        )
    report.check("pgbouncer transaction pooling", partial(pgbouncer_transaction_mode, stack))
    report.check("haproxy health checks: every replica UP", partial(lb_servers_up, stack))
    report.check("haproxy spreads /health over replicas", partial(lb_spreads, stack))
    report.check("UI server (nginx) serves the app", partial(ui_serves_app, stack))
    report.check("login through the UI server", partial(login, stack, stack.ui))
    admin = report.check("login through haproxy", partial(login, stack, stack.lb))
    if admin is not None:
        run_agent_checks(stack, report, admin)
    return report


def run_agent_checks(stack: Stack, report: Report, admin: dict[str, str]) -> None:
    agent = report.check(f"agent {stack.agent_id} online", partial(agent_online, stack, admin))
    if agent is None:
        return
    holder = str(agent["pod_name"])
    print(f"     agent {stack.agent_id} is connected to {holder}", flush=True)
    report.check("Agent registered log line", partial(agent_registered_log, stack, holder))
    report.check("AgentHub Redis keys", partial(hub_keys, stack, holder))
    report.check("command channel per replica", partial(command_channels, stack))
    report.check("agent leader key (one HA leader)", partial(leader_key, stack))
    for service in REPLICAS:
        report.check(f"ping via {service}", partial(ping_via, stack, admin, service, holder))
    report.check(
        "session through haproxy: running, deleted", partial(session_lifecycle, stack, admin)
    )
    report.check("sessions via every replica", partial(sessions_via_every_replica, stack, admin))
    for service in REPLICAS:
        report.check(f"{service} /api/v1/metrics", partial(replica_metrics, stack, service, holder))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env-file", type=Path, required=True, help="the stack's .env")
    args = parser.parse_args()
    stack = Stack(env=read_env(args.env_file))
    report = run(stack)
    if report.failed:
        print(f"FAILED: {len(report.failed)} check(s): {', '.join(report.failed)}", flush=True)
        return 1
    print("ALL CHECKS PASSED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
