"""AgentHub shared state: which replica holds which agent, and the pub/sub bus between
replicas. One interface (`HubBackend`), a memory and a Redis implementation."""
