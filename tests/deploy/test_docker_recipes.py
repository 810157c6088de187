"""The docker-agent HA recipes keep the promises their headers make: with the Redis backend
every host shares one Redis and one agent key (a Redis per host elects a leader per host; a
bootstrap key gets every host but the first refused)."""

from __future__ import annotations

from pathlib import Path

import yaml

DOCKER = Path(__file__).resolve().parents[2] / "deploy" / "docker"


def test_the_redis_ha_recipe_shares_one_redis_and_one_key_across_hosts() -> None:
    services = yaml.safe_load((DOCKER / "docker-compose.ha-redis.yaml").read_text())["services"]
    assert not [name for name, s in services.items() if "redis" in str(s.get("image", ""))]
    env = services["docker-agent"]["environment"]
    assert env["LEADER_ELECTION_BACKEND"] == "redis"
    # required from the operator, the same on every host, never defaulted per host
    assert env["REDIS_URL"].startswith("${REDIS_URL:?")
    assert env["AGENT_API_KEY"].startswith("${AGENT_API_KEY:?")
    assert "AGENT_BOOTSTRAP_KEY" not in env
