"""Field helpers shared by the settings models: the guide's duration strings ("5m", "30s",
"1h", "250ms" or bare seconds) and env var aliases accepted exactly as written."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AliasChoices, BeforeValidator

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: object) -> float:
    """Return seconds for a number or a Go-style duration string; raise ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("a duration must be a number or a string like '30s', '5m', '1h'")
    if isinstance(value, int | float):
        return float(value)
    match = _PATTERN.match(str(value))
    if match is None:
        raise ValueError(f"{value!r} is not a duration (use e.g. '30s', '5m', '1h' or seconds)")
    number, unit = match.groups()
    return float(number) * _UNITS[unit or "s"]


Seconds = Annotated[float, BeforeValidator(parse_duration)]


def env(name: str) -> AliasChoices:
    """Accept the variable exactly as the guide writes it (and lower-case, for overrides)."""
    return AliasChoices(name, name.lower())
