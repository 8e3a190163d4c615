"""The bootstrap Job's Rails runner script, run by Ruby against stand-ins of the Portus models:
a first run sets Portus up, a second changes nothing, a changed public name updates the record. And
the migration's last step, which gives a half-set-up database its hidden ``portus`` user."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from components.portus import BOOTSTRAP_SCRIPT
from components.portus.tasks import ENSURE_PORTUS_USER

FAKE_PORTUS = Path(__file__).parent / "ruby" / "fake_portus.rb"
INPUTS = {
    "BOOTSTRAP_ADMIN_USERNAME": "admin",
    "BOOTSTRAP_ADMIN_EMAIL": "admin@example.com",
    "BOOTSTRAP_ADMIN_PASSWORD": "s3cretPassw0rd",
    "BOOTSTRAP_REGISTRY_NAME": "registry",
    "BOOTSTRAP_REGISTRY_HOSTNAME": "registry.portus.svc.cluster.local:5000",
    "BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME": "registry.example.com",
}


@pytest.fixture(scope="module")
def ruby() -> str:
    path = shutil.which("ruby")
    assert path, "ruby is required for this test (Debian package 'ruby'; .ci/run installs it)"
    return path


def run_bootstrap(ruby: str, state: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ruby, str(FAKE_PORTUS), str(state), str(BOOTSTRAP_SCRIPT)],
        env={"PATH": "/usr/bin:/bin", **INPUTS, **overrides},
        capture_output=True, text=True, timeout=60, check=False,
    )


def test_first_run_creates_the_administrator_then_the_registry_record(ruby: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    result = run_bootstrap(ruby, state)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "bootstrap: created administrator admin; "
        "registered registry.portus.svc.cluster.local:5000 as registry.example.com"
    )
    rows = json.loads(state.read_text())
    assert rows["users"] == [{"username": "admin", "email": "admin@example.com",
                              "password": "s3cretPassw0rd", "admin": True}]
    assert rows["registries"] == [{"name": "registry", "hostname": "registry.portus.svc.cluster.local:5000",
                                   "use_ssl": True, "external_hostname": "registry.example.com"}]


def test_second_run_changes_nothing(ruby: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert run_bootstrap(ruby, state).returncode == 0
    before = state.read_text()
    again = run_bootstrap(ruby, state)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "bootstrap: already up to date"
    assert state.read_text() == before


def test_changed_public_name_updates_the_record_and_keeps_the_admin_password(ruby: str, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    assert run_bootstrap(ruby, state).returncode == 0
    result = run_bootstrap(ruby, state, BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME="registry.example.com:30443",
                           BOOTSTRAP_ADMIN_PASSWORD="an0therPassword")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "bootstrap: updated registry external_hostname"
    rows = json.loads(state.read_text())
    assert rows["registries"][0]["external_hostname"] == "registry.example.com:30443"
    # The account may have changed its password in the UI since: a rerun must not reset it.
    assert rows["users"][0]["password"] == "s3cretPassw0rd"


def test_missing_input_fails_loudly(ruby: str, tmp_path: Path) -> None:
    result = run_bootstrap(ruby, tmp_path / "state.json", BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME="")
    assert result.returncode != 0
    assert "BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME is not set" in result.stderr
    assert not (tmp_path / "state.json").exists()


def test_migration_gives_a_half_set_up_database_its_portus_user(ruby: str, tmp_path: Path) -> None:
    # The schema was loaded, the seed never ran, and the bootstrap has since created the administrator.
    state = tmp_path / "state.json"
    assert run_bootstrap(ruby, state).returncode == 0
    script = tmp_path / "ensure_portus_user.rb"
    script.write_text(ENSURE_PORTUS_USER)

    def ensure() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [ruby, str(FAKE_PORTUS), str(state), str(script)],
            env={"PATH": "/usr/bin:/bin", "PORTUS_PASSWORD": "p0rtusPassword"},
            capture_output=True, text=True, timeout=60, check=False,
        )

    assert ensure().returncode == 0
    users = {user["username"]: user for user in json.loads(state.read_text())["users"]}
    assert users["portus"] == {"username": "portus", "email": "portus@portus.com", "password": "p0rtusPassword",
                               "admin": True}
    assert "admin" in users
    before = state.read_text()
    again = ensure()
    assert again.returncode == 0, again.stderr
    assert state.read_text() == before, "a second run changes nothing"
