"""A webhook receiver for tests: HTTPS with a certificate from a private CA made here (the
control plane trusts it through WEBHOOK_CA_BUNDLE), recording every request, answering with
scripted statuses or holding a request open, and checking signatures with the recipe
docs/identity.md gives receivers (written out again here, not imported from the server)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import hmac
import ipaddress
import json
import ssl
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """The receiver's recipe (docs/identity.md, "Verifying a delivery")."""
    try:
        parts = dict(item.split("=", 1) for item in headers["x-streamspace-signature"].split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts.get("v1", ""))


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def delivery(self) -> str:
        return self.headers["x-streamspace-delivery"]

    @property
    def event(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    port: int = 0
    secret: str = ""
    requests: list[Received] = field(default_factory=list)
    # status to answer the nth request (0-based); default 200
    answer: Callable[[int, Received], int] = lambda n, r: 200
    # the nth request waits for this before answering, when set by the test
    held: dict[int, asyncio.Event] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hooks/streamspace"

    def accepted(self) -> list[Received]:
        """The requests whose signature verifies, deduplicated by delivery id (first kept)."""
        seen: dict[str, Received] = {}
        for r in self.requests:
            if verify(self.secret, r.headers, r.body):
                seen.setdefault(r.delivery, r)
        return list(seen.values())

    def counts(self) -> Counter[str]:
        return Counter(r.delivery for r in self.requests)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")[1:]
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (line.split(":", 1) for line in lines if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            received = Received(headers=headers, body=body)
            n = len(self.requests)
            self.requests.append(received)
            if n in self.held:
                await self.held[n].wait()
            status = self.answer(n, received)
            text = f"answer {status} to request {n}".encode()
            writer.write(
                f"HTTP/1.1 {status} X\r\nContent-Length: {len(text)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + text
            )
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the sender went away (killed mid-delivery)
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def make_ca(directory: Path) -> tuple[Path, ssl.SSLContext]:
    """A private CA (its certificate written to ca.pem) and a server TLS context with a
    certificate it signed for 127.0.0.1 and localhost."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webhook test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "server.pem"
    chain.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_file, context


@contextlib.asynccontextmanager
async def receiver(context: ssl.SSLContext) -> AsyncIterator[Receiver]:
    r = Receiver()
    server = await asyncio.start_server(r._serve, "127.0.0.1", 0, ssl=context)
    r.port = server.sockets[0].getsockname()[1]
    try:
        yield r
    finally:
        for event in r.held.values():
            event.set()
        server.close()
