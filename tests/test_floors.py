"""The stacks render with the lowest versions requirements.txt allows, into the same objects as with
the newest: every floor is one the program really works with."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.floors import REQUIREMENTS, ensure_floor_venv, floor_pins
from tests.render import Rendered, object_filenames


@pytest.fixture(scope="module")
def floors_python() -> Path:
    return ensure_floor_venv()


def test_every_requirement_has_a_floor() -> None:
    pins = floor_pins(REQUIREMENTS.read_text())
    assert {pin.split("==")[0] for pin in pins} == {"pulumi", "pulumi-kubernetes", "pulumi-tls", "pulumi-random"}
    with pytest.raises(ValueError, match="floor"):
        floor_pins("pulumi-kubernetes<5\n")


def test_the_floors_venv_holds_exactly_the_floors(floors_python: Path) -> None:
    frozen = subprocess.run(
        [str(floors_python), "-m", "pip", "freeze", "--disable-pip-version-check"],
        capture_output=True, text=True, check=True,
    ).stdout.lower().replace("_", "-").split()
    for pin in floor_pins(REQUIREMENTS.read_text()):
        assert pin.lower() in frozen, pin


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_renders_the_same_objects_with_the_lowest_versions(
    stack: str, floors_python: Path, tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    out_dir = tmp_path / stack
    rendered = subprocess.run(
        [str(floors_python), "-m", "tests.render", f"Pulumi.{stack}.yaml", str(out_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert rendered.returncode == 0, rendered.stderr

    newest: Rendered = request.getfixturevalue(stack)
    written = {path.name for path in out_dir.glob("*.yaml")}
    assert written == set(object_filenames(newest.objects))


def test_render_mode_works_with_the_lowest_versions(floors_python: Path, tmp_path: Path) -> None:
    # always_render and an empty kubeconfig beside a render folder: what the oldest allowed SDK accepts.
    folder = tmp_path / "manifests"
    stack_file = tmp_path / "Pulumi.gitops.yaml"
    config = yaml.safe_load((REPO_ROOT / "Pulumi.dev.yaml").read_text())
    config["config"]["portus:renderYamlTo"] = str(folder)
    stack_file.write_text(yaml.safe_dump(config))
    (tmp_path / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    rendered = subprocess.run(
        [str(floors_python), "-m", "tests.render", str(stack_file), str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert rendered.returncode == 0, rendered.stderr
    objects = list((tmp_path / "out").glob("*.yaml"))
    assert len(list((folder / "1-manifest").glob("*.yaml"))) == len(objects) >= 35
