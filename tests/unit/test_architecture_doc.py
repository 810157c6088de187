"""docs/architecture.md's source tree is the tree in src/: every package is in it, everything
in it exists, and a package shown open lists all of its modules."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "streamspace"


def documented() -> dict[str, bool]:
    """Each path in the block, relative to the package, and whether it is shown open."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Source tree", 1)[1].split("```", 2)[1]
    paths: dict[str, bool] = {}
    stack: list[str] = []
    for line in block.splitlines():
        match = re.match(r"( *)(\S+)", line)
        if match is None:
            continue
        depth = len(match.group(1)) // 2
        name = match.group(2).rstrip("/")
        del stack[depth:]
        if stack:
            paths[stack[-1]] = True  # its parent is shown open
        path = f"{stack[-1]}/{name}" if stack else name
        paths[path] = False
        stack.append(path)
    return paths


def packages() -> set[str]:
    """Every directory, but not the insides of the migration tree."""
    return {
        str(d.relative_to(PACKAGE))
        for d in PACKAGE.rglob("*")
        if d.is_dir() and "__pycache__" not in d.parts and "migrations" not in d.parent.parts
    }


def test_every_package_is_in_the_tree() -> None:
    assert packages() <= set(documented())


def test_everything_in_the_tree_exists() -> None:
    missing = [p for p in documented() if not (PACKAGE / p).exists()]
    assert missing == []


def test_a_package_shown_open_lists_all_its_modules() -> None:
    tree = documented()
    open_packages = ["", *(p for p, shown in tree.items() if shown)]
    for package in open_packages:
        modules = {
            str(m.relative_to(PACKAGE))
            for m in (PACKAGE / package).glob("*.py")
            if m.name != "__init__.py"
        }
        assert modules <= set(tree), f"{package or 'streamspace'}/ lists not {modules - set(tree)}"
