"""The webhook sender, on every replica: claims due deliveries under a lease, POSTs each one
signed to its HTTPS endpoint (never following redirects, never to a denied address), and
records the outcome. Which rows exist and when they are due is services/webhook_deliveries.py's."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import ssl
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from streamspace import __version__
from streamspace.config import ControlPlaneSettings
from streamspace.control_plane.metrics import Metrics
from streamspace.control_plane.services import webhook_deliveries as rows
from streamspace.control_plane.services.webhook_deliveries import Backoff, Claimed, Outcome

log = logging.getLogger(__name__)
BATCH = 20  # deliveries claimed per pass, sent concurrently
PURGE_INTERVAL = 600.0  # seconds between two deletions of log rows past retention


def body(claimed: Claimed) -> bytes:
    """The request body: the same bytes on every attempt of a delivery."""
    envelope = {
        "id": claimed.id,
        "type": claimed.event_type,
        "created_at": claimed.created_at.isoformat(),
        "org_id": claimed.org_id,
        "data": claimed.payload,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def signature(*, secret: str, timestamp: int, payload: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the secret>`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def tls_context(settings: ControlPlaneSettings) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.webhook_ca_bundle is not None:
        context.load_verify_locations(cafile=str(settings.webhook_ca_bundle))
    return context


class DeniedAddress(Exception):
    """The receiver's name resolves to an address webhooks may not reach."""


NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: IPv4 in the last 32 bits


def denied(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        # an IPv4 address carried in an IPv6 one is judged as that IPv4 address (Python counts
        # the NAT64 and 6to4 prefixes as global, yet they reach 169.254.169.254 and the like)
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif ip in NAT64:
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return not ip.is_global or ip.is_multicast


async def resolve(host: str, port: int, *, deny_private: bool) -> str:
    """The address to connect to: the first the name resolves to, refused if any of them
    is denied (checked now, at every attempt, and then connected to as checked, so a name
    re-pointed after the check cannot send the request elsewhere)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise DeniedAddress(f"{host} resolves to no address")
    if deny_private:
        bad = [a for a in addresses if denied(a)]
        if bad:
            raise DeniedAddress(
                f"{host} resolves to {bad[0]}, a private or reserved address"
                " (WEBHOOK_DENY_PRIVATE_ADDRESSES)"
            )
    return addresses[0]


class WebhookSender:
    def __init__(
        self,
        *,
        db: async_sessionmaker[AsyncSession],
        settings: ControlPlaneSettings,
        metrics: Metrics,
        pod: str,
    ) -> None:
        self._db, self._settings, self._metrics, self._pod = db, settings, metrics, pod
        self._backoff = Backoff(
            base=settings.webhook_retry_base,
            cap=settings.webhook_retry_max,
            max_attempts=settings.webhook_max_attempts,
        )
        self._client = httpx.AsyncClient(
            verify=tls_context(settings),
            follow_redirects=False,
            trust_env=False,  # a proxy from the environment would see and decide for us
            # one connection per attempt: connections are opened to checked addresses
            limits=httpx.Limits(max_keepalive_connections=0),
            timeout=httpx.Timeout(
                settings.webhook_timeout, connect=settings.webhook_connect_timeout
            ),
        )

    async def run(self) -> None:
        purged = time.monotonic() - PURGE_INTERVAL
        try:
            while True:
                try:
                    while await self.send_due() == BATCH:
                        pass  # more are due: no pause between full batches
                    if time.monotonic() - purged >= PURGE_INTERVAL:
                        await rows.purge(self._db, older_than=self._settings.webhook_log_retention)
                        purged = time.monotonic()
                except Exception:
                    log.exception("webhook delivery pass failed; retrying next interval")
                await asyncio.sleep(self._settings.webhook_poll_interval)
        finally:
            await self._client.aclose()

    async def send_due(self) -> int:
        claimed = await rows.claim(
            self._db, owner=self._pod, lease=self._settings.webhook_lease, limit=BATCH
        )
        async with asyncio.TaskGroup() as group:
            for delivery in claimed:
                group.create_task(self._send_one(delivery))
        return len(claimed)

    async def _send_one(self, claimed: Claimed) -> None:
        log.info(
            "webhook delivery %s (%s) attempt %d to %s",
            claimed.id,
            claimed.event_type,
            claimed.attempt,
            claimed.url,
        )
        outcome = await self.attempt(claimed)
        result = await rows.finish(
            self._db, claimed=claimed, owner=self._pod, outcome=outcome, backoff=self._backoff
        )
        if result is None:
            log.warning("webhook delivery %s: lease lost before its outcome was kept", claimed.id)
            return
        self._metrics.webhook_deliveries.labels(result=result).inc()
        if result != "delivered":
            log.warning(
                "webhook delivery %s attempt %d: %s (%s)",
                claimed.id,
                claimed.attempt,
                outcome.error or f"HTTP {outcome.status}",
                result,
            )

    async def attempt(self, claimed: Claimed) -> Outcome:
        try:
            async with asyncio.timeout(self._settings.webhook_timeout):
                return await self._post(claimed)
        except TimeoutError:
            return Outcome(error=f"no answer within {self._settings.webhook_timeout:g} s")
        except DeniedAddress as exc:
            return Outcome(error=str(exc))
        except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
            return Outcome(error=f"{type(exc).__name__}: {exc}"[: rows.EXCERPT_CHARS])

    async def _post(self, claimed: Claimed) -> Outcome:
        url = urlsplit(claimed.url)
        host, port = url.hostname or "", url.port or 443
        address = await resolve(
            host, port, deny_private=self._settings.webhook_deny_private_addresses
        )
        payload = body(claimed)
        pinned = f"[{address}]" if ":" in address else address
        target = urlunsplit(("https", f"{pinned}:{port}", url.path or "/", url.query, ""))
        headers = {
            "Host": url.netloc.rsplit("@", 1)[-1],
            "Content-Type": "application/json",
            "User-Agent": f"StreamSpace-Webhooks/{__version__}",
            "X-StreamSpace-Event": claimed.event_type,
            "X-StreamSpace-Delivery": claimed.id,
            "X-StreamSpace-Attempt": str(claimed.attempt),
            "X-StreamSpace-Signature": signature(
                secret=claimed.secret, timestamp=int(time.time()), payload=payload
            ),
        }
        request = self._client.build_request(
            "POST", target, content=payload, headers=headers, extensions={"sni_hostname": host}
        )
        response = await self._client.send(request, stream=True)
        try:
            excerpt = await _excerpt(response)
        finally:
            await response.aclose()
        if 300 <= response.status_code < 400:
            return Outcome(
                status=response.status_code,
                response=excerpt,
                error="redirects are not followed: register the final URL",
            )
        return Outcome(status=response.status_code, response=excerpt)


async def _excerpt(response: httpx.Response) -> str:
    """The answer's first EXCERPT_CHARS bytes, read no further."""
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= rows.EXCERPT_CHARS:
            break
    return data[: rows.EXCERPT_CHARS].decode("utf-8", "replace").replace("\x00", "")
