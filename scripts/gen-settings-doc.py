"""Write docs/settings.md from the settings models, so the page cannot drift from the code.

.venv/bin/python scripts/gen-settings-doc.py           # rewrite docs/settings.md
.venv/bin/python scripts/gen-settings-doc.py --check   # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from streamspace.config import AgentSettings, ControlPlaneSettings
from streamspace.config.durations import parse_duration

DOC = Path(__file__).resolve().parent.parent / "docs" / "settings.md"
HEADER = """# Settings

Every setting is an environment variable, read once when the process starts; a bad value
stops it with a message naming the variable. The lower-case name works too. A setting marked
"Duration." takes seconds (`30`, `2.5`) or a string such as `250ms`, `30s`, `5m`, `1h`.

Generated from the pydantic models by `scripts/gen-settings-doc.py`; do not edit by hand
(`tests/unit/test_settings_doc.py` fails when this page is stale).
"""
SECTIONS: list[tuple[str, str, type[BaseSettings]]] = [
    ("Control plane", "`streamspace api` and `streamspace up`", ControlPlaneSettings),
    ("Agent", "`streamspace agent`", AgentSettings),
]


def env_names(name: str, field: FieldInfo) -> list[str]:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        choices = [c for c in alias.choices if isinstance(c, str)]
        return list(dict.fromkeys(c.upper() for c in choices))
    if isinstance(alias, str):
        return [alias.upper()]
    return [name.upper()]


def default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        factory = field.default_factory
        return f"`{factory.__module__.lstrip('_')}.{getattr(factory, '__name__', 'default')}()`"
    value: Any = field.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Path) and not value.is_absolute():
        value = f"./{value}"
    return f"`{value}`"


def description(field: FieldInfo) -> str:
    text = (field.description or "").strip()
    text = text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    choices = [a for a in typing.get_args(field.annotation) if isinstance(a, str)]
    if typing.get_origin(field.annotation) is typing.Literal and choices:
        text += f" One of: {', '.join(f'`{c}`' for c in choices)}."
    if any(getattr(m, "func", None) is parse_duration for m in field.metadata):
        text += " Duration."
    return text


def section(title: str, used_by: str, model: type[BaseSettings]) -> str:
    rows = [
        f"| {' / '.join(f'`{n}`' for n in env_names(name, field))} | {default(field)} "
        f"| {description(field)} |"
        for name, field in model.model_fields.items()
    ]
    table = "\n".join(["| Variable | Default | Description |", "|---|---|---|", *rows])
    return f"## {title}\n\nRead by {used_by} (`{model.__name__}`).\n\n{table}\n"


def render() -> str:
    return "\n".join([HEADER, *(section(*s) for s in SECTIONS)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    wanted = render()
    if parser.parse_args().check:
        current = DOC.read_text() if DOC.exists() else ""
        if current != wanted:
            print(f"{DOC} is stale: run scripts/gen-settings-doc.py", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted)
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
