"""Backups that restore: Debian's MariaDB started as the StatefulSet runs it, the database and user the
image's entrypoint creates, a schema filled with rows, the backup CronJob's exact rendered command, the
database dropped, and the README's restore procedure run step by step (its ``kubectl exec`` commands,
in a directory laid out as the restore pod's volumes). Also: a failing dump leaves no file, old dumps
are pruned, and a restore refuses a damaged dump or a database Portus is still connected to."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.database import DATABASE, USER
from tests.conftest import REPO_ROOT, stack_config
from tests.objects import container, env, get, pod_spec, secret_data
from tests.rehearsal.processes import IS_ROOT, SBIN_PATH, PodUser, as_pod_user, child_env, run
from tests.rehearsal.test_database import SERVER_PROGRAMS, Database
from tests.render import Rendered, render_stack


def entrypoint_sql(password: str) -> str:
    """What the image's entrypoint runs for MARIADB_DATABASE and MARIADB_USER (mariadb-docker, 10.11)."""
    return (
        f"CREATE DATABASE IF NOT EXISTS `{DATABASE}`;"
        f" CREATE USER '{USER}'@'%' IDENTIFIED BY '{password}';"
        f" GRANT ALL ON `{DATABASE.replace('_', chr(92) + '_')}`.* TO '{USER}'@'%';"
    )


# A schema with what mariadb-dump must carry besides rows: foreign keys, a trigger, a routine, an event.
SCHEMA_SQL = """
CREATE TABLE users (id INT PRIMARY KEY, username VARCHAR(255) NOT NULL UNIQUE, created_at DATETIME NOT NULL);
CREATE TABLE tags (id INT PRIMARY KEY AUTO_INCREMENT, user_id INT NOT NULL, name VARCHAR(255),
                   digest VARCHAR(255), FOREIGN KEY (user_id) REFERENCES users (id));
CREATE TABLE audit (tag_id INT, what VARCHAR(16));
CREATE TRIGGER tags_audit AFTER INSERT ON tags FOR EACH ROW INSERT INTO audit VALUES (NEW.id, 'push');
CREATE PROCEDURE tag_count() SELECT COUNT(*) FROM tags;
CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY DO DELETE FROM audit WHERE what = 'expired';
INSERT INTO users VALUES (1, 'portus', '2024-01-02 03:04:05'), (2, 'zoë', '2024-02-03 04:05:06');
INSERT INTO tags (user_id, name, digest) VALUES (1, 'latest', 'sha256:aa'), (2, 'v1.0', NULL),
                                                (2, 'ünïcode', 'sha256:bb');
"""
CONTENTS_SQL = """
SELECT * FROM users ORDER BY id; SELECT * FROM tags ORDER BY id; SELECT * FROM audit ORDER BY tag_id;
SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE();
SELECT ROUTINE_NAME FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE();
SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE();
SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA
 WHERE SCHEMA_NAME = DATABASE();
"""
README_STEP = re.compile(r"^kubectl -n \$NS exec job/mariadb-restore -- (.+)$")


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    missing = [f"{b} ({p})" for b, p in {**SERVER_PROGRAMS, "mariadb-dump": "mariadb-client"}.items()
               if subprocess.run(["sh", "-c", f"command -v {b}"], env={"PATH": SBIN_PATH},
                                 capture_output=True, check=False).returncode]
    if missing:
        pytest.fail(f"this test needs {', '.join(missing)}; .ci/run installs them", pytrace=False)
    return render_stack(stack_config("prod"))


class BackupPod:
    """A backup or restore pod's container, laid out under the database's directory as the kubelet lays
    out its volumes for the pod's fsGroup (each volume a local directory, its ConfigMap and Secret files
    written), run as the pod's user, each path in the environment moved there."""

    def __init__(self, rendered: Rendered, cronjob: str, database: Database) -> None:
        workload = get(rendered, "CronJob", cronjob)
        self.spec = container(workload)
        self.user = PodUser.of(pod_spec(workload), self.spec)
        fs_group = self.user.groups[-1]
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        self.mounts: dict[str, Path] = {}
        for mount in self.spec["volumeMounts"]:
            local = database.root / "backup-pod" / mount["name"]
            volume = volumes[mount["name"]]
            if not local.exists():  # the backup and the restore pod share the claim
                local.mkdir(parents=True)
                if {"emptyDir", "persistentVolumeClaim"} & volume.keys():
                    Database.lay_out(local, fs_group)
            files: dict[str, str] = {}
            if "configMap" in volume:
                files = get(rendered, "ConfigMap", volume["configMap"]["name"])["data"]
            elif "secret" in volume:
                data = secret_data(get(rendered, "Secret", volume["secret"]["secretName"]))
                files = {item["path"]: data[item["key"]] for item in volume["secret"]["items"]}
            for name, text in files.items():
                file = local / name
                file.unlink(missing_ok=True)
                file.write_text(text)
                if "secret" in volume and IS_ROOT:
                    os.chown(file, 0, fs_group)
                file.chmod(0o555 if "configMap" in volume else 0o440)
            self.mounts[mount["mountPath"]] = local
        self.env = {name: self.local(value) for name, value in env(self.spec).items()}
        # The database Service's name resolves to the pod; here the server listens on loopback.
        self.env |= {"MARIADB_HOST": "127.0.0.1", "MARIADB_PORT": str(database.port)}
        self.backups = self.mounts["/backup"]

    def local(self, text: str) -> str:
        for mount in sorted(self.mounts, key=len, reverse=True):
            text = re.sub(rf"(?<![\w/]){re.escape(mount)}(?=/|:|$)", str(self.mounts[mount]), text)
        return text

    def run(self, argv: list[str], **overrides: str) -> subprocess.CompletedProcess[str]:
        return run(as_pod_user([self.local(arg) for arg in argv], self.user), child_env({**self.env, **overrides}),
                   timeout=60)

    def dumps(self) -> list[str]:
        return sorted(p.name for p in self.backups.iterdir())


class PortusDatabase(Database):
    """The server with the database and user the image's entrypoint creates, and the user's password
    from the rendered Secret (which the backup pod reads)."""

    def __init__(self, statefulset: dict[str, Any], root: Path, password: str) -> None:
        super().__init__(statefulset, root)
        self.password = password

    def portus_client(self, *extra: str) -> list[str]:
        """The client as the Portus user over TCP, as Portus (and the backup) connect."""
        return ["mariadb", "--no-defaults", "-h127.0.0.1", f"-P{self.port}", f"-u{USER}", f"-p{self.password}",
                *extra]


@pytest.fixture
def database(rendered: Rendered) -> Iterator[PortusDatabase]:
    # Not pytest's tmp_path: the pods' UIDs must be able to reach the directories.
    with tempfile.TemporaryDirectory(prefix="rehearsal-backup-") as root:
        os.chmod(root, 0o755)
        password = secret_data(get(rendered, "Secret", "mariadb-credentials"))["password"]
        db = PortusDatabase(get(rendered, "StatefulSet", "mariadb"), Path(root), password)
        db.install(db.pod_user)
        server = db.start(db.password)
        try:
            created = db.sql(entrypoint_sql(db.password))
            assert created.returncode == 0, created.stderr
            yield db
        finally:
            server.stop()


def as_portus(db: PortusDatabase, sql: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run([*db.portus_client(*extra), DATABASE, "-e", sql], child_env(), timeout=30)


def contents(db: PortusDatabase) -> str:
    shown = as_portus(db, CONTENTS_SQL, "-N")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def readme_restore_steps() -> list[str]:
    """The commands the README's restore procedure runs inside the restore pod, in order."""
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("<!-- restore-procedure -->", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    return [match[1] for line in block.splitlines() if (match := README_STEP.match(line.strip()))]


def test_a_backup_restores_with_the_readme_procedure(
    rendered: Rendered, database: PortusDatabase,
) -> None:
    db = database
    filled = as_portus(db, SCHEMA_SQL)
    assert filled.returncode == 0, filled.stderr
    before = contents(db)
    assert "zoë" in before and "tags_audit" in before and "tag_count" in before and "nightly" in before

    backup = BackupPod(rendered, "mariadb-backup", db)
    done = backup.run(container(get(rendered, "CronJob", "mariadb-backup"))["command"])
    assert done.returncode == 0, done.stderr
    [dump] = backup.dumps()
    assert re.fullmatch(rf"{DATABASE}-\d{{8}}T\d{{6}}Z\.sql\.gz", dump)

    dropped = db.sql(f"DROP DATABASE {DATABASE}")
    assert dropped.returncode == 0, dropped.stderr

    # The restore pod mounts the same claim: the same directory.
    restore = BackupPod(rendered, "mariadb-restore", db)
    steps = readme_restore_steps()
    assert [shlex.split(step)[0] for step in steps] == ["ls", "restore"]
    listed = restore.run(shlex.split(steps[0]))
    assert listed.returncode == 0 and dump in listed.stdout, listed.stdout + listed.stderr
    example = re.search(rf"{DATABASE}-\S+\.sql\.gz", steps[1])
    assert example, "the README's restore step names an example dump"
    restored = restore.run(shlex.split(steps[1].replace(example[0], dump)))
    assert restored.returncode == 0, restored.stderr

    assert contents(db) == before


def test_a_failing_dump_exits_non_zero_and_leaves_no_file(
    rendered: Rendered, database: PortusDatabase,
) -> None:
    db = database
    backup = BackupPod(rendered, "mariadb-backup", db)
    command = container(get(rendered, "CronJob", "mariadb-backup"))["command"]
    older = [f"{DATABASE}-20240101T031500Z.sql.gz"]
    (backup.backups / older[0]).write_bytes(b"an older dump")
    wrong = db.root / "wrong-password"
    wrong.write_text("not-the-password")
    wrong.chmod(0o444)

    failed = backup.run(command, MARIADB_PASSWORD_FILE=str(wrong))
    assert failed.returncode != 0
    assert "FAILED" in failed.stderr and "Access denied" in failed.stderr
    assert backup.dumps() == older, "a failed dump must leave nothing behind and keep the older dumps"

    # A dump killed mid-write leaves a partial file that the next run removes.
    (backup.backups / f".{DATABASE}-20240102T031500Z.sql.gz.partial").write_bytes(b"half")
    assert backup.run(command).returncode == 0
    assert len(backup.dumps()) == 2 and not [name for name in backup.dumps() if name.startswith(".")]


def test_only_the_newest_dumps_are_kept(rendered: Rendered, database: PortusDatabase
                                        ) -> None:
    db = database
    backup = BackupPod(rendered, "mariadb-backup", db)
    retain = int(backup.env["BACKUP_RETAIN"])
    old = [f"{DATABASE}-202401{day:02d}T031500Z.sql.gz" for day in range(1, retain + 3)]
    for name in old:
        (backup.backups / name).write_bytes(b"old")
    done = backup.run(container(get(rendered, "CronJob", "mariadb-backup"))["command"])
    assert done.returncode == 0, done.stderr
    kept = backup.dumps()
    assert len(kept) == retain
    assert kept[:-1] == old[-(retain - 1):], "the newest dumps stay, the oldest go"


def test_restore_refuses_a_damaged_dump_or_a_connected_portus(
    rendered: Rendered, database: PortusDatabase,
) -> None:
    db = database
    assert as_portus(db, SCHEMA_SQL).returncode == 0
    before = contents(db)
    restore = BackupPod(rendered, "mariadb-restore", db)
    backup = BackupPod(rendered, "mariadb-backup", db)
    assert backup.run(container(get(rendered, "CronJob", "mariadb-backup"))["command"]).returncode == 0
    [dump] = backup.dumps()

    damaged = restore.backups / f"{DATABASE}-20240101T000000Z.sql.gz"
    damaged.write_bytes((restore.backups / dump).read_bytes()[:-40])
    refused = restore.run(["restore", damaged.name])
    assert refused.returncode != 0
    assert contents(db) == before, "a damaged dump must not touch the database"

    # Portus still running: its connection pool holds sessions as the same user.
    portus = subprocess.Popen(
        [*db.portus_client(), "-e", "SELECT SLEEP(60)"], env=child_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        assert _sessions(db) >= 1
        refused = restore.run(["restore", dump])
        assert refused.returncode != 0
        assert "scale the portus and portus-background Deployments to 0" in refused.stderr
    finally:
        portus.kill()
        portus.wait()
    assert contents(db) == before


def _sessions(db: PortusDatabase) -> int:
    def count() -> int:
        shown = db.sql(f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{USER}'")
        return int(shown.stdout.split()[-1])

    for _ in range(50):
        if (n := count()) >= 1:
            return n
        time.sleep(0.1)
    return 0
