"""The commands users and CI run: rendering each shipped stack file and validating the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from components.config import KEYS
from tests.conftest import REPO_ROOT


@pytest.mark.parametrize("stack", ["dev", "prod", "scale"])
def test_each_stack_file_renders_schema_valid_objects(stack: str, tmp_path: Path) -> None:
    out_dir = tmp_path / stack
    rendered = subprocess.run(
        [sys.executable, "-m", "tests.render", f"Pulumi.{stack}.yaml", str(out_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert len(list(out_dir.glob("*.yaml"))) >= 35
    outputs = json.loads((out_dir / "outputs.json").read_text())
    assert outputs["portalUrl"].startswith("https://")
    assert "adminPassword" in json.loads((out_dir / "outputs.secrets.json").read_text())

    validated = subprocess.run(
        [sys.executable, "-m", "tests.schema", str(out_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert "0 problem(s)" in validated.stdout


def test_readme_documents_every_config_key() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    for key in KEYS:
        assert f"`{key.name}`" in readme, key.name
    assert "python -m pytest" in readme
