"""The lowest versions ``requirements.txt`` allows, installed into a virtualenv of their own.

A floor that is lower than what the program needs (a keyword argument the SDK does not know yet, say)
fails when the stacks are rendered with these versions, here rather than on a user's machine.
``python -m tests.floors`` prints the path of the virtualenv's interpreter, creating it when needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = REPO_ROOT / "requirements.txt"
DEV_REQUIREMENTS = REPO_ROOT / "requirements-dev.txt"
VENV = REPO_ROOT / ".ci" / "floors-venv"
# What `python -m tests.render` imports besides the program's own dependencies.
RENDER_TOOLS = ("cryptography", "PyYAML")
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<specs>.*)$")
_FLOOR = re.compile(r">=\s*(?P<version>[0-9][0-9A-Za-z.]*)")


def _requirement_lines(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("-")]


def floor_pins(text: str) -> list[str]:
    """``name==floor`` for every requirement; each must declare a ``>=`` floor."""
    pins = []
    for line in _requirement_lines(text):
        match = _REQUIREMENT.match(line)
        floor = _FLOOR.search(match["specs"]) if match else None
        if match is None or floor is None:
            raise ValueError(f"requirement without a '>=' floor: {line!r}")
        pins.append(f"{match['name']}=={floor['version']}")
    return pins


def render_tools(text: str) -> list[str]:
    """The requirement lines of the renderer's own tools, as requirements-dev.txt states them."""
    wanted = {name.lower() for name in RENDER_TOOLS}
    tools = []
    for line in _requirement_lines(text):
        match = _REQUIREMENT.match(line)
        if match and match["name"].lower() in wanted:
            tools.append(line)
    return tools


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def ensure_floor_venv(venv: Path = VENV) -> Path:
    """The interpreter of a virtualenv holding exactly the floors (plus the renderer's tools).

    Reused while requirements.txt's floors stay the same; rebuilt when they change."""
    wanted = "\n".join([*floor_pins(REQUIREMENTS.read_text()), *render_tools(DEV_REQUIREMENTS.read_text())])
    stamp = venv / "requirements.floors"
    if stamp.exists() and stamp.read_text() == wanted and python_of(venv).exists():
        return python_of(venv)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python_of(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted.split("\n")],
        check=True,
    )
    stamp.write_text(wanted)
    return python_of(venv)


if __name__ == "__main__":
    print(ensure_floor_venv())
