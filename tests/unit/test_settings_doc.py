"""docs/settings.md is generated from the settings models; this fails when it is stale."""

from __future__ import annotations

import runpy
import subprocess
import sys
from pathlib import Path

from streamspace.config import AgentSettings, ControlPlaneSettings

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen-settings-doc.py"


def test_settings_doc_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"{result.stderr}\nregenerate: .venv/bin/python {SCRIPT}"


def test_every_setting_has_a_description_and_a_row() -> None:
    env_names = runpy.run_path(str(SCRIPT))["env_names"]
    page = (ROOT / "docs" / "settings.md").read_text()
    for model in (ControlPlaneSettings, AgentSettings):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"
            assert f"| `{env_names(name, field)[0]}`" in page, name
