"""The one session state machine: every state change goes through `check_transition`."""

from __future__ import annotations

from typing import Literal

from streamspace.errors import InvalidTransition

SessionState = Literal[
    "pending",
    "starting",
    "running",
    "hibernating",
    "hibernated",
    "waking",
    "terminating",
    "terminated",
    "failed",
]

TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"starting", "running", "failed", "terminating", "terminated"}),
    "starting": frozenset({"running", "failed", "terminating"}),
    "running": frozenset({"hibernating", "hibernated", "terminating", "failed"}),
    "hibernating": frozenset({"hibernated", "running", "failed", "terminating"}),
    "hibernated": frozenset({"waking", "running", "terminating", "failed"}),
    "waking": frozenset({"running", "failed", "terminating"}),
    "terminating": frozenset({"terminated", "failed"}),
    "failed": frozenset({"terminating", "terminated"}),
    "terminated": frozenset(),
}

# States that hold capacity on an agent (a hibernated session holds none).
LOAD_STATES = ("pending", "starting", "running", "hibernating", "waking", "terminating")
# States the guide's streamspace_sessions_active counts.
ACTIVE_STATES = ("pending", "starting", "running", "hibernating", "waking")
FINAL_STATES = ("terminated",)


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, target: str, *, action: str | None = None) -> None:
    """Raise InvalidTransition (HTTP 409) unless current -> target is allowed."""
    if not can_transition(current, target):
        verb = action or f"move to {target}"
        raise InvalidTransition(f"cannot {verb} a session that is {current}")
