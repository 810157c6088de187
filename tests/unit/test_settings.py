"""Settings accept the guide's env names exactly, apply them, and fail clearly on bad values."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from streamspace.config import load_agent_settings, load_settings
from streamspace.config.durations import parse_duration
from streamspace.config.redis_urls import parse_sentinel_url
from streamspace.control_plane.db.engine import create_engine
from streamspace.errors import ConfigError


def test_guide_env_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "POD_NAME": "streamspace-api-abc123",
        "AGENTHUB_REDIS_ENABLED": "true",
        "REDIS_HOST": "redis.internal",
        "REDIS_PORT": "6380",
        "REDIS_POOL_SIZE": "7",
        "DB_MAX_OPEN_CONNS": "30",
        "DB_MAX_IDLE_CONNS": "4",
        "DB_CONN_MAX_LIFETIME": "2m",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = load_settings()
    assert (s.pod_name, s.agenthub_redis_enabled, s.redis_host, s.redis_port) == (
        "streamspace-api-abc123",
        True,
        "redis.internal",
        6380,
    )
    assert (s.redis_pool_size, s.db_max_open_conns, s.db_max_idle_conns) == (7, 30, 4)
    assert s.db_conn_max_lifetime == 120.0
    assert s.redis_url(1) == "redis://redis.internal:6380/1"


def test_a_redis_password_with_url_characters_survives_the_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "p@ss/w:rd#1")
    url = load_settings().redis_url(0)
    assert aioredis.Redis.from_url(url).connection_pool.connection_kwargs["password"] == (
        "p@ss/w:rd#1"
    )


def test_defaults_match_the_guide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("POD_NAME", raising=False)
    s = load_settings()
    assert (s.redis_port, s.redis_pool_size, s.db_max_open_conns, s.db_max_idle_conns) == (
        6379,
        10,
        25,
        5,
    )
    assert s.db_conn_max_lifetime == 300.0
    assert s.pod_name  # hostname by default
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")


def test_pool_settings_reach_the_real_pool() -> None:
    s = load_settings(
        database_url="postgresql+asyncpg://u:p@127.0.0.1:1/x",
        db_max_open_conns=12,
        db_max_idle_conns=3,
        db_conn_max_lifetime="90s",
    )
    engine = create_engine(s)
    pool = engine.sync_engine.pool
    assert pool.size() == 3  # type: ignore[attr-defined]
    assert pool._max_overflow == 9  # type: ignore[attr-defined]
    assert pool._recycle == 90


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("REDIS_PORT", "not-a-port", "REDIS_PORT"),
        ("DB_CONN_MAX_LIFETIME", "forever", "DB_CONN_MAX_LIFETIME"),
        ("DB_MAX_IDLE_CONNS", "50", "DB_MAX_IDLE_CONNS cannot exceed DB_MAX_OPEN_CONNS"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("REDIS_SENTINEL_HOSTS", "s1:26379,s2", "REDIS_SENTINEL_HOSTS: Value error, 's2'"),
        ("REDIS_SENTINEL_HOSTS", "s1:70000", "is not host:port"),
        ("REDIS_SENTINEL_MASTER", "", "REDIS_SENTINEL_MASTER"),
    ],
)
def test_bad_values_fail_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in info.value.message


def test_sentinel_settings_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().redis_sentinels == ()  # no Sentinel by default
    monkeypatch.setenv("REDIS_SENTINEL_HOSTS", "s-0:26379, s-1:26380,[fd00::2]:26379")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "streamspace")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "sentinel-pw")
    s = load_settings()
    assert s.redis_sentinels == (("s-0", 26379), ("s-1", 26380), ("fd00::2", 26379))
    assert (s.redis_sentinel_master, s.redis_sentinel_password) == ("streamspace", "sentinel-pw")


def test_agent_settings_guide_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AGENT_ID": "docker-prod-host1",
        "CONTROL_PLANE_URL": "wss://api.example.com",
        "PLATFORM": "docker",
        "REGION": "us-east-1",
        "ENABLE_HA": "true",
        "LEADER_ELECTION_BACKEND": "redis",
        "REDIS_URL": "redis://r:6379/0",
        "LOCK_FILE_PATH": "/tmp/x.lock",
    }.items():
        monkeypatch.setenv(key, value)
    s = load_agent_settings()
    assert (s.agent_id, s.region, s.enable_ha, s.leader_election_backend) == (
        "docker-prod-host1",
        "us-east-1",
        True,
        "redis",
    )
    assert (s.lease_duration, s.renew_deadline, s.retry_period) == (15.0, 10.0, 2.0)
    assert s.http_base_url == "https://api.example.com"


def test_agent_settings_reject_inconsistent_timings() -> None:
    with pytest.raises(ConfigError, match="LEASE_DURATION > RENEW_DEADLINE > RETRY_PERIOD"):
        load_agent_settings(
            agent_id="a-1", control_plane_url="http://x", lease_duration=5, renew_deadline=10
        )


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("5m", 300), ("30s", 30), ("1h", 3600), ("250ms", 0.25), ("12", 12), (7, 7)],
)
def test_durations(raw: object, seconds: float) -> None:
    assert parse_duration(raw) == seconds


def test_agent_redis_url_through_sentinel() -> None:
    base = {"agent_id": "a-1", "control_plane_url": "http://x"}
    url = "redis+sentinel://:p%40ss@s-0:26379,s-1:26379/mymaster/2?sentinel_password=sp"
    assert load_agent_settings(**base, redis_url=url).redis_url == url
    found = parse_sentinel_url(url)
    assert found is not None
    assert (found.sentinels, found.master, found.db) == (
        (("s-0", 26379), ("s-1", 26379)),
        "mymaster",
        2,
    )
    assert (found.password, found.sentinel_password) == ("p@ss", "sp")
    assert parse_sentinel_url("redis://r:6379/0") is None
    for bad in ("redis+sentinel://s-0:26379", "redis+sentinel://s-0/mymaster"):
        with pytest.raises(ConfigError, match="REDIS_URL"):
            load_agent_settings(**base, redis_url=bad)


def test_forwarded_allow_ips_from_before_trusted_proxies_still_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An install upgraded from when uvicorn read FORWARDED_ALLOW_IPS keeps its trusted
    proxies (clients behind them keep their own login budgets); TRUSTED_PROXIES wins."""
    monkeypatch.delenv("TRUSTED_PROXIES", raising=False)
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.7,10.0.3.0/24")
    assert load_settings().trusted_proxy_networks == ["10.0.0.7/32", "10.0.3.0/24"]
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")
    assert load_settings().trusted_proxy_networks == ["0.0.0.0/0", "::/0"]
    monkeypatch.setenv("TRUSTED_PROXIES", "192.168.1.1")
    assert load_settings().trusted_proxy_networks == ["192.168.1.1/32"]
