"""MariaDB with the generated arguments and credentials init container, run by Debian's real server:
the server accepts the charset and init-file arguments, the init file is harmless before the Portus
user exists, and on a kept data directory it re-applies whatever password the Secret now holds."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import stack_config
from tests.objects import container, env, get, pod_spec
from tests.rehearsal.processes import SBIN_PATH, Service, child_env, free_port, run
from tests.render import Rendered, render_stack

SERVER_PROGRAMS = {"mariadbd": "mariadb-server", "mariadb": "mariadb-client", "mariadb-install-db": "mariadb-server"}


@pytest.fixture(scope="module")
def statefulset() -> dict[str, Any]:
    missing = [f"{b} ({p})" for b, p in SERVER_PROGRAMS.items() if shutil.which(b, path=SBIN_PATH) is None]
    if missing:
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them", pytrace=False)
    rendered: Rendered = render_stack(stack_config("dev"))
    return get(rendered, "StatefulSet", "mariadb")


class Database:
    """One data directory, started and stopped as the pod would be, with the pod's own commands."""

    def __init__(self, statefulset: dict[str, Any], root: Path) -> None:
        self.init = next(c for c in pod_spec(statefulset)["initContainers"] if c["name"] == "credentials")
        self.server = container(statefulset)
        self.user = env(self.server)["MARIADB_USER"]
        mount = next(m["mountPath"] for m in self.init["volumeMounts"] if m["name"] == "init")
        self.init_dir, self.data, self.run_dir = root / "init", root / "data", root / "run"
        for directory in (self.init_dir, self.data, self.run_dir):
            directory.mkdir()
        self.local = lambda text: text.replace(mount, str(self.init_dir))
        self.port = free_port()
        self.socket = self.run_dir / "mysqld.sock"
        self.log = root / "mariadb.log"
        installed = run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.data}", "--user=root",
             "--auth-root-authentication-method=socket", "--skip-test-db"],
            child_env(), timeout=120,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr

    def start(self, password: str) -> Service:
        """The credentials init container with the Secret's ``password``, then the server."""
        written = run(["sh", "-c", self.local(self.init["command"][-1])],
                      child_env({"MARIADB_PASSWORD": password}), timeout=10)
        assert written.returncode == 0, written.stderr
        server = Service(
            "mariadb",
            ["mariadbd", "--no-defaults", f"--datadir={self.data}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.run_dir}/mariadb.pid",
             "--user=root", *(self.local(arg) for arg in self.server["args"])],
            child_env(), self.log, lambda: self.sql("SELECT 1").returncode == 0,
        )
        server.start(timeout=60)
        return server

    def sql(self, statement: str) -> Any:
        """As root over the socket (the image's entrypoint creates the user this way)."""
        return run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-e", statement],
                   child_env(), timeout=10)

    def login(self, password: str) -> Any:
        """As the Portus user over TCP, as Portus connects."""
        return run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{self.port}", f"-u{self.user}",
                    f"-p{password}", "-N", "-e", "SELECT @@character_set_server, @@collation_server"],
                   child_env(), timeout=10)


@pytest.fixture
def database(statefulset: dict[str, Any], tmp_path: Path) -> Iterator[Database]:
    yield Database(statefulset, tmp_path)


def test_kept_volume_takes_the_new_secret_password(database: Database) -> None:
    # First start on an empty data directory: the user does not exist yet and the init file is a no-op.
    server = database.start("firstPassw0rd")
    try:
        assert "ERROR" not in database.log.read_text(), "the init file failed before the user existed"
        created = database.sql(
            f"CREATE USER '{database.user}'@'%' IDENTIFIED BY 'firstPassw0rd';"
            f" GRANT ALL ON portus_production.* TO '{database.user}'@'%';"
        )
        assert created.returncode == 0, created.stderr
        first = database.login("firstPassw0rd")
        assert first.returncode == 0, first.stderr
        # utf8 (utf8mb3) with utf8_unicode_ci, as Portus needs.
        assert first.stdout.split() == ["utf8mb3", "utf8mb3_unicode_ci"]
    finally:
        server.stop()

    # A new stack generated a new password; the kept data directory still has the old one.
    server = database.start("secondPassw0rd")
    try:
        assert "ERROR" not in database.log.read_text()
        assert database.login("secondPassw0rd").returncode == 0
        assert database.login("firstPassw0rd").returncode != 0
    finally:
        server.stop()
