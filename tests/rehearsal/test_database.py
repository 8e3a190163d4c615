"""MariaDB as the StatefulSet runs it, with Debian's real server: the pod's UID and groups (when the
rehearsal runs as root), the credentials Secret as files readable by the pod's group only, the init
containers' own commands and the server's arguments.

The server accepts the charset and init-file arguments; the init file is harmless before the Portus
user exists and, on a kept data directory, re-applies whatever password the Secret now holds; and data
an earlier release wrote as the image's ``mysql`` account (UID 999) is handed over to the new UID.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import stack_config
from tests.objects import container, env, get, pod_spec
from tests.rehearsal.processes import IS_ROOT, SBIN_PATH, PodUser, Service, as_pod_user, child_env, free_port, run
from tests.render import Rendered, render_stack

SERVER_PROGRAMS = {"mariadbd": "mariadb-server", "mariadb": "mariadb-client", "mariadb-install-db": "mariadb-server"}
ROOT_PASSWORD = "rootPassw0rd"


@pytest.fixture(scope="module")
def statefulset() -> dict[str, Any]:
    missing = [f"{b} ({p})" for b, p in SERVER_PROGRAMS.items() if shutil.which(b, path=SBIN_PATH) is None]
    if missing:
        pytest.fail(f"this test needs {', '.join(missing)}; ./test.sh installs them", pytrace=False)
    rendered: Rendered = render_stack(stack_config("dev"))
    return get(rendered, "StatefulSet", "mariadb")


class Database:
    """One data directory and the pod that runs on it: volumes laid out as the kubelet does for the pod's
    fsGroup, started and stopped as the pod would be, with the pod's own commands."""

    def __init__(self, statefulset: dict[str, Any], root: Path) -> None:
        self.root = root
        self.pod = pod_spec(statefulset)
        self.server = container(statefulset)
        self.inits = {c["name"]: c for c in self.pod["initContainers"]}
        self.pod_user = PodUser.of(self.pod, self.server)
        self.user = env(self.server)["MARIADB_USER"]
        # "run" and "tmp" stand for the pod's emptyDirs at /run/mysqld and /tmp: private to the pod.
        self.dirs = {name: root / name for name in ("data", "init", "credentials", "run", "tmp")}
        mounts = {m["name"]: m["mountPath"] for c in [self.server, *self.inits.values()] for m in c["volumeMounts"]}
        self.local_paths = {mounts[name]: str(self.dirs[name]) for name in ("data", "init", "credentials")}
        for directory in self.dirs.values():
            directory.mkdir()
        self.lay_out(self.dirs["data"], self.pod_user.groups[-1])
        self.port = free_port()
        self.socket = self.dirs["run"] / "mysqld.sock"
        self.log = root / "mariadb.log"
        self.root_password = ""

    @staticmethod
    def lay_out(volume: Path, fs_group: int) -> None:
        """A writable volume as the kubelet sets it up for the pod's fsGroup (when running as root)."""
        if IS_ROOT:
            os.chown(volume, 0, fs_group)
            volume.chmod(0o2770)

    def local(self, text: str) -> str:
        for mount, path in sorted(self.local_paths.items(), key=lambda item: -len(item[0])):
            text = text.replace(mount, path)
        return text

    def install(self, user: PodUser) -> None:
        """A new data directory, as the image's entrypoint creates it under a non-root UID."""
        self.lay_out(self.dirs["tmp"], user.groups[-1])
        installed = run(
            as_pod_user(["mariadb-install-db", "--no-defaults", f"--datadir={self.dirs['data']}",
                         f"--tmpdir={self.dirs['tmp']}",
                         "--auth-root-authentication-method=normal", "--skip-test-db"], user),
            child_env(), timeout=120,
        )
        assert installed.returncode == 0, installed.stdout + installed.stderr

    def write_secret(self, password: str, fs_group: int) -> None:
        """The credentials Secret's files: the pod's group may read them, nobody else."""
        for variable, value in (("MARIADB_PASSWORD_FILE", password), ("MARIADB_ROOT_PASSWORD_FILE", ROOT_PASSWORD)):
            file = Path(self.local(env(self.server)[variable]))
            file.unlink(missing_ok=True)  # read-only once written, as the kubelet leaves it
            file.write_text(value)
            if IS_ROOT:
                os.chown(file, 0, fs_group)
            file.chmod(0o440)

    def run_init(self, name: str, user: PodUser | None = None) -> Any:
        """An init container's command, as its pod runs it (``user``: the pod of an earlier release)."""
        init = self.inits[name]
        return run(as_pod_user([self.local(arg) for arg in init["command"]], user or PodUser.of(self.pod, init)),
                   child_env(), timeout=30)

    def start(self, password: str, user: PodUser | None = None) -> Service:
        """A new pod: the Secret with ``password``, the credentials init container, then the server, all
        as ``user`` (the pod's; another for an earlier release's pod)."""
        user = user or self.pod_user
        for volume in ("init", "run", "tmp"):  # a new pod's emptyDirs
            shutil.rmtree(self.dirs[volume])
            self.dirs[volume].mkdir()
            self.lay_out(self.dirs[volume], user.groups[-1])
        self.write_secret(password, user.groups[-1])
        written = self.run_init("credentials", user)
        assert written.returncode == 0, written.stderr
        server = Service(
            "mariadb",
            as_pod_user(["mariadbd", "--no-defaults", f"--datadir={self.dirs['data']}", f"--socket={self.socket}",
                         f"--tmpdir={self.dirs['tmp']}",
                         f"--port={self.port}", "--bind-address=127.0.0.1",
                         f"--pid-file={self.dirs['run']}/mariadb.pid",
                         *(self.local(arg) for arg in self.server["args"])], user),
            child_env(), self.log, lambda: self.sql("SELECT 1").returncode == 0,
        )
        server.start(timeout=60)
        return server

    def set_up(self) -> None:
        """What the image's entrypoint does on a new data directory, with the passwords it read from
        MARIADB_ROOT_PASSWORD_FILE and MARIADB_PASSWORD_FILE."""
        password = Path(self.local(env(self.server)["MARIADB_PASSWORD_FILE"])).read_text()
        root_password = Path(self.local(env(self.server)["MARIADB_ROOT_PASSWORD_FILE"])).read_text()
        done = self.sql(
            f"ALTER USER 'root'@'localhost' IDENTIFIED BY '{root_password}';"
            f" CREATE DATABASE {env(self.server)['MARIADB_DATABASE']};"
            f" CREATE USER '{self.user}'@'%' IDENTIFIED BY '{password}';"
            f" GRANT ALL ON {env(self.server)['MARIADB_DATABASE']}.* TO '{self.user}'@'%';"
        )
        assert done.returncode == 0, done.stderr
        self.root_password = root_password

    def sql(self, statement: str) -> Any:
        """As root over the socket."""
        return run(["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", f"-p{self.root_password}",
                    "-N", "-e", statement], child_env(), timeout=10)

    def login(self, password: str, statement: str = "SELECT @@character_set_server, @@collation_server") -> Any:
        """As the Portus user over TCP, as Portus connects."""
        return run(["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{self.port}", f"-u{self.user}",
                    f"-p{password}", "-N", "-e", statement], child_env(), timeout=10)


@pytest.fixture
def database(statefulset: dict[str, Any]) -> Iterator[Database]:
    # Not pytest's tmp_path: the pod's UID must be able to reach the directories.
    with tempfile.TemporaryDirectory(prefix="rehearsal-db-") as root:
        os.chmod(root, 0o755)
        yield Database(statefulset, Path(root))


def test_kept_volume_takes_the_new_secret_password(database: Database) -> None:
    database.install(database.pod_user)
    # First start on an empty data directory: the user does not exist yet and the init file is a no-op.
    server = database.start("firstPassw0rd")
    try:
        assert "ERROR" not in database.log.read_text(), "the init file failed before the user existed"
        database.set_up()
        first = database.login("firstPassw0rd")
        assert first.returncode == 0, first.stderr
        # utf8 (utf8mb3) with utf8_unicode_ci, as Portus needs.
        assert first.stdout.split() == ["utf8mb3", "utf8mb3_unicode_ci"]
    finally:
        server.stop()
    if IS_ROOT:  # the server ran as the pod's UID
        assert (database.dirs["data"] / "mysql").stat().st_uid == database.pod_user.user >= 10000

    # A new stack generated a new password; the kept data directory still has the old one.
    server = database.start("secondPassw0rd")
    try:
        assert "ERROR" not in database.log.read_text()
        assert database.login("secondPassw0rd").returncode == 0
        assert database.login("firstPassw0rd").returncode != 0
    finally:
        server.stop()


def test_credentials_init_refuses_an_empty_password(database: Database) -> None:
    database.lay_out(database.dirs["init"], database.pod_user.groups[-1])
    database.write_secret("", database.pod_user.groups[-1])
    assert database.run_init("credentials").returncode != 0
    assert not (database.dirs["init"] / "init.sql").exists()


def test_an_upgrade_hands_the_earlier_releases_data_to_the_new_uid(database: Database) -> None:
    if not IS_ROOT:
        pytest.skip("rehearsing the upgrade needs root: the earlier release's files belong to another UID (999)")
    handover = database.inits["file-ownership"]
    previous_uid = handover["securityContext"]["runAsUser"]
    earlier = PodUser(previous_uid, previous_uid, (previous_uid,))
    # A volume whose driver does not apply fsGroup (hostPath, local, NFS): the provisioner's open
    # directory, then everything as the earlier release wrote it (0700 directories, 0660 files).
    data = database.dirs["data"]
    os.chown(data, 0, 0)
    data.chmod(0o777)
    database.install(earlier)
    server = database.start("firstPassw0rd", earlier)
    try:
        database.set_up()
        assert database.login("firstPassw0rd", "CREATE TABLE portus_production.tags (name TEXT);"
                              " INSERT INTO portus_production.tags VALUES ('3.20');").returncode == 0
    finally:
        server.stop()
    assert (data / "mysql").stat().st_uid == previous_uid

    # The new UID alone cannot even open the system tables.
    with pytest.raises(RuntimeError, match="did not come up"):
        database.start("firstPassw0rd")
    assert "Permission denied" in database.log.read_text() or "Errcode: 13" in database.log.read_text()

    handed = database.run_init("file-ownership")
    assert handed.returncode == 0, handed.stderr
    system_tables = (data / "mysql").stat()
    assert (system_tables.st_uid, system_tables.st_gid) == (previous_uid, database.pod_user.group)
    assert system_tables.st_mode & 0o070 == 0o070
    server = database.start("firstPassw0rd")
    try:
        assert database.login("firstPassw0rd", "SELECT name FROM portus_production.tags").stdout.split() == ["3.20"]
        assert database.login("firstPassw0rd", "INSERT INTO portus_production.tags VALUES ('3.21');"
                              " CREATE TABLE portus_production.more (id INT);").returncode == 0
        # A directory of the new UID (0700): the next start's handover must step around it.
        assert database.sql("CREATE DATABASE newer").returncode == 0
    finally:
        server.stop()
    again = database.run_init("file-ownership")
    assert again.returncode == 0, again.stderr
    server = database.start("firstPassw0rd")
    try:
        assert database.login("firstPassw0rd", "SELECT COUNT(*) FROM portus_production.tags").stdout.split() == ["2"]
    finally:
        server.stop()
