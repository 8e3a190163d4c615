"""The commands users and CI run: rendering each shipped stack file and validating the result."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

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


def test_readme_ci_and_the_workflow_run_the_same_test_command() -> None:
    test_sh = (REPO_ROOT / "test.sh").read_text()
    for step in (".ci/venv/bin/ruff check .", ".ci/venv/bin/mypy .", '.ci/venv/bin/python -m pytest "$@"'):
        assert f"\n{step}\n" in test_sh, step
    assert "\n./test.sh " in (REPO_ROOT / "README.md").read_text()
    assert "\nexec ./test.sh\n" in (REPO_ROOT / ".ci" / "run").read_text()
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "pull-request.yml").read_text())
    runs = [step.get("run", "") for step in workflow["jobs"]["test"]["steps"]]
    assert [run for run in runs if run] == ['sudo PYTHON="$(command -v python)" ./test.sh']


def _render_cli(stack_file: Path | str, out_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.render", str(stack_file), str(out_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )


VALID = "config:\n  portus:host: portus.example.com\n  portus:adminEmail: admin@example.com\n"


def _stack_file(text: str) -> Callable[[Path], Path]:
    def write(tmp_path: Path) -> Path:
        (tmp_path / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
        (tmp_path / "Pulumi.s.yaml").write_text(text)
        return tmp_path / "Pulumi.s.yaml"

    return write


def _file_in_the_way(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("")
    return tmp_path / "file" / "out"


def _earlier_render(tmp_path: Path) -> Path:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "deployment-gone.yaml").write_text("kind: Deployment\n")
    return tmp_path / "out"


# (what is wrong, the stack file, the output folder, the line printed with {stack} and {out} filled in)
BAD_INPUTS: list[tuple[str, Callable[[Path], Path], Callable[[Path], Path], str]] = [
    ("no stack file", lambda t: t / "Pulumi.missing.yaml", lambda t: t / "out",
     "error: {stack}: no such file"),
    ("one space of wrong indentation", _stack_file(VALID.replace("  portus:adminEmail", "   portus:adminEmail")),
     lambda t: t / "out", "error: {stack}:3:21: not valid YAML: mapping values are not allowed here"),
    ("config is a list", _stack_file("# a comment\nconfig:\n  - portus:host: portus.example.com\n"),
     lambda t: t / "out", "error: {stack}:3: 'config' must map keys (portus:<key>) to values, not a list"),
    ("a list at the top", _stack_file("- config\n"), lambda t: t / "out",
     "error: {stack}:1: a stack file is a mapping with a 'config:' key at the top, not a list"),
    ("output folder below a file", _stack_file(VALID), _file_in_the_way,
     "error: {out}: cannot create it: {out_parent} is not a folder"),
    ("output folder holds an earlier render", _stack_file(VALID), _earlier_render,
     "error: {out}: not empty; render into a new or empty folder (files of an earlier render would stay beside"
     " the new ones)"),
]


@pytest.mark.parametrize(("problem", "stack", "out", "line"), BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_renderer_names_what_is_wrong_and_where(
    problem: str, stack: Callable[[Path], Path], out: Callable[[Path], Path], line: str, tmp_path: Path
) -> None:
    stack_file, out_dir = stack(tmp_path), out(tmp_path)
    before = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else None

    result = _render_cli(stack_file, out_dir)

    assert result.returncode == 2
    assert result.stderr == line.format(stack=stack_file, out=out_dir, out_parent=out_dir.parent) + "\n"
    assert (sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else None) == before


def test_an_unwritable_output_folder_is_one_line(tmp_path: Path) -> None:
    out_dir = Path("/proc/portus-render")  # not writable, even by root
    result = _render_cli(_stack_file(VALID)(tmp_path), out_dir)
    assert result.returncode == 2
    assert re.fullmatch(r"error: /proc/portus-render: cannot write: .+\n", result.stderr), result.stderr


# Lines of a render that hold generated material: keys and certificates (PEM lines), passwords and
# other secrets (letters and digits only, in a Secret or the outputs), and the checksums of both.
GENERATED_LINE = re.compile(
    r"""^[<>] (
        \s*[A-Za-z0-9+/]{1,64}={0,2}                                  # a line of a PEM block
      | \s*checksum/\w+:\ [0-9a-f]{64}                                # a pod template checksum
      | \s*[\w.-]+:\ [0-9A-Za-z]{24,}                                  # a generated password or key base
      | \s*"(adminPassword|caCertificate)":\ ".*",?                    # outputs.json
    )$""",
    re.VERBOSE,
)


def test_two_renders_differ_only_in_generated_material(tmp_path: Path) -> None:
    for out in ("first", "second"):
        rendered = _render_cli("Pulumi.prod.yaml", tmp_path / out)
        assert rendered.returncode == 0, rendered.stderr
    diff = subprocess.run(["diff", "-r", str(tmp_path / "first"), str(tmp_path / "second")],
                          capture_output=True, text=True, check=False)

    changed = [line for line in diff.stdout.splitlines() if line.startswith(("<", ">"))]
    assert changed, "no generated material differs: the test would not notice anything"
    others = [line for line in changed if not GENERATED_LINE.match(line)]
    assert others == [], "renders differ in more than generated material:\n" + "\n".join(others[:20])
    assert "Only in" not in diff.stdout
    shutil.rmtree(tmp_path)
