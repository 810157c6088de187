"""Redis addresses as settings spell them: `host:port` lists (REDIS_SENTINEL_HOSTS) and
`redis+sentinel://` URLs (the agent's REDIS_URL). Parsing and validation only; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_URL_FORM = (
    "redis+sentinel://[[user]:password@]host:port[,host:port...]/master[/db]"
    "[?sentinel_password=...]"
)


def split_list(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def parse_host_port(entry: str) -> tuple[str, int]:
    """`host:port` or `[v6addr]:port`; ValueError naming the entry otherwise."""
    host, sep, port = entry.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{entry!r} is not host:port (e.g. redis-sentinel-0:26379)")
    return host, int(port)


@dataclass(frozen=True)
class SentinelUrl:
    """A Redis master found through sentinels; the password is the data nodes'."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def parse_sentinel_url(url: str) -> SentinelUrl | None:
    """None for any other scheme; ValueError saying what is wrong with a sentinel URL."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if (
        not split_list(hosts)
        or not 1 <= len(path) <= 2
        or (len(path) == 2 and not path[1].isdigit())
    ):
        raise ValueError(f"expected {SENTINEL_URL_FORM}")
    query = parse_qs(parts.query)
    return SentinelUrl(
        sentinels=tuple(parse_host_port(entry) for entry in split_list(hosts)),
        master=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) if userinfo else None,
        sentinel_password=query.get("sentinel_password", [None])[0],
    )
