"""The session state machine allows the lifecycle and refuses the impossible."""

import itertools
from typing import get_args

import pytest

from streamspace.control_plane.services.states import TRANSITIONS, SessionState, check_transition
from streamspace.errors import InvalidTransition


def test_full_lifecycle_is_allowed() -> None:
    path = [
        "pending",
        "starting",
        "running",
        "hibernating",
        "hibernated",
        "waking",
        "running",
        "terminating",
        "terminated",
    ]
    for current, target in itertools.pairwise(path):
        check_transition(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        ("terminated", "running"),
        ("hibernated", "hibernating"),
        ("pending", "hibernating"),
        ("running", "waking"),
    ],
)
def test_impossible_transitions_raise(current: str, target: str) -> None:
    with pytest.raises(InvalidTransition, match=f"that is {current}"):
        check_transition(current, target)


def test_every_state_is_known() -> None:
    targets = {t for ts in TRANSITIONS.values() for t in ts}
    assert targets <= set(TRANSITIONS)


def test_the_state_literal_is_exactly_the_machines_states() -> None:
    # SessionRead.state is this Literal: a state the machine can reach but the Literal lacks
    # would fail the API's response validation.
    assert set(get_args(SessionState)) == set(TRANSITIONS)
