"""Pick the leader-election backend named by LEADER_ELECTION_BACKEND.

Imports each backend's client only when that backend is chosen. Call it inside the event
loop: the Docker client binds to the running loop.
"""

from __future__ import annotations

from streamspace.config.agent import AgentSettings
from streamspace.errors import ConfigError
from streamspace.leader.base import LeaderElector


def build_elector(settings: AgentSettings) -> LeaderElector:
    """The elector for this replica (`POD_NAME` is its identity)."""
    backend = settings.election_backend
    if backend == "file":
        from streamspace.leader.file import FileLeaderElector

        return FileLeaderElector(
            agent_id=settings.agent_id,
            identity=settings.pod_name,
            lease_duration=settings.lease_duration,
            path=settings.lock_file_path,
        )
    if backend == "redis":
        from streamspace.leader.redis import RedisLeaderElector

        return RedisLeaderElector.from_url(
            url=settings.redis_url,
            agent_id=settings.agent_id,
            identity=settings.pod_name,
            lease_duration=settings.lease_duration,
        )
    if backend == "swarm":
        import aiodocker

        from streamspace.leader.swarm import SwarmLeaderElector

        return SwarmLeaderElector(
            agent_id=settings.agent_id,
            identity=settings.pod_name,
            lease_duration=settings.lease_duration,
            docker=aiodocker.Docker(),
            service=settings.swarm_service,
        )
    if backend == "kubernetes":
        from streamspace.leader.kubernetes import KubernetesLeaseElector

        return KubernetesLeaseElector(
            agent_id=settings.agent_id,
            identity=settings.pod_name,
            lease_duration=settings.lease_duration,
            namespace=settings.namespace,
            kubeconfig=settings.kubeconfig,
        )
    raise ConfigError(f"LEADER_ELECTION_BACKEND={backend!r} is not known")
