"""MariaDB for Portus: a one-replica StatefulSet whose claim outlives the StatefulSet, a headless
Service and generated credentials (root, and a dedicated ``portus`` user that owns only its database).

``DatabaseConnection`` is what Portus needs to reach its database, this one or an external one
(``endpoint.py`` has both variants)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import kube
from components.database.backup import BackupArgs, BackupConfig, DatabaseBackup

NAME = "mariadb"
COMPONENT = "database"
PORT = 3306
DATABASE = "portus_production"
USER = "portus"
PASSWORD_KEY = "password"
ROOT_PASSWORD_KEY = "root-password"
DATA_DIR = "/var/lib/mysql"
INIT_DIR = "/run/mysqld-init"
# The credentials Secret as files: the image's entrypoint reads MARIADB_*_PASSWORD_FILE (its `file_env`),
# so no password sits in the container's environment as Kubernetes sets it.
SECRETS_DIR = "/run/secrets/mariadb"
# A high UID of no account on the node. The image's entrypoint runs unchanged under any non-root UID:
# it skips its chown and `gosu` steps and initialises or starts the server as that user; everything it
# writes is on the data volume, /run/mysqld and /tmp.
RUN_AS = kube.RunAs(user=10999, group=10999)
# Earlier releases ran as the image's `mysql` account; a kept volume still holds its files.
PREVIOUS_RUN_AS = kube.RunAs(user=999, group=999)


def password_file(key: str) -> str:
    """Where a key of the credentials Secret is, in any container that mounts it at SECRETS_DIR."""
    return f"{SECRETS_DIR}/{key}"


def generated_password(name: str, length: int, parent: pulumi.Resource) -> random.RandomPassword:
    """A password that stays the same for the life of the stack (it lives in state).

    Letters and digits only: the values end up in URLs, YAML and shell commands where ``%@:$`` break.
    """
    return random.RandomPassword(
        name, length=length, special=False, min_lower=1, min_upper=1, min_numeric=1,
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class DatabaseConnection:
    """Portus's connection settings (its ``config/database.yml`` reads them from ``PORTUS_DB_*``)."""

    adapter: str
    """``mysql2`` or ``postgresql``: the two adapters Portus 2.4.3 bundles."""
    host: str
    port: int
    database: str
    user: str
    password_secret: pulumi.Input[str]
    """Secret holding the user's password under ``password_key``."""
    password_key: str = PASSWORD_KEY


@dataclass
class DatabaseArgs:
    namespace: pulumi.Input[str]
    image: str
    resources: kube.ResourceSpec
    storage_size: str
    storage_class: str | None
    kept: kube.KeptData
    """How the StatefulSet and its claim are kept and adopted."""
    backup: BackupConfig
    host: str
    """The Service's in-cluster DNS name, as clients use it."""


def _server_container(args: DatabaseArgs, data_mount: k8s.core.v1.VolumeMountArgs,
                      credentials_mount: k8s.core.v1.VolumeMountArgs) -> k8s.core.v1.ContainerArgs:
    """MariaDB itself: Portus's character set, the passwords from files, probes that tell starting from down."""
    return k8s.core.v1.ContainerArgs(
        name=NAME,
        image=args.image,
        # utf8 (utf8mb3) with utf8_unicode_ci: Portus's tag uniqueness checks break on utf8mb4.
        args=[
            "--character-set-server=utf8", "--collation-server=utf8_unicode_ci", "--skip-name-resolve",
            f"--init-file={INIT_DIR}/init.sql",
        ],
        ports=[k8s.core.v1.ContainerPortArgs(name="mysql", container_port=PORT)],
        env=kube.env({
            "MARIADB_ROOT_PASSWORD_FILE": password_file(ROOT_PASSWORD_KEY),
            "MARIADB_PASSWORD_FILE": password_file(PASSWORD_KEY),
            "MARIADB_DATABASE": DATABASE,
            "MARIADB_USER": USER,
        }),
        volume_mounts=[
            data_mount,
            k8s.core.v1.VolumeMountArgs(name="run", mount_path="/run/mysqld"),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            k8s.core.v1.VolumeMountArgs(name="init", mount_path=INIT_DIR, read_only=True),
            credentials_mount,
        ],
        # The first start initialises the data directory with networking off: give it time.
        startup_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="mysql"),
            period_seconds=5, failure_threshold=120,
        ),
        # `mariadb-admin ping` exits 0 whenever the server answers, even without credentials.
        readiness_probe=k8s.core.v1.ProbeArgs(
            exec_=k8s.core.v1.ExecActionArgs(
                command=["mariadb-admin", "--protocol=tcp", "--host=127.0.0.1", "ping"]
            ),
            period_seconds=10, timeout_seconds=5, failure_threshold=3,
        ),
        liveness_probe=k8s.core.v1.ProbeArgs(
            tcp_socket=k8s.core.v1.TCPSocketActionArgs(port="mysql"),
            period_seconds=20, timeout_seconds=5, failure_threshold=6,
        ),
        resources=kube.resources(args.resources),
        security_context=kube.restricted_container_security(),
    )


def _credentials_init(image: str, credentials_mount: k8s.core.v1.VolumeMountArgs) -> k8s.core.v1.ContainerArgs:
    """Writes the init file that re-applies the Secret's password at every start.

    MariaDB applies MARIADB_PASSWORD only to an empty data directory. A kept volume adopted by a new stack
    (new generated passwords) would lock Portus out, so every start re-applies the Secret's password to the
    existing user (a no-op on first start, before the user exists). The file lives in memory; the password
    is letters and digits only, so it needs no quoting. A missing or empty password file fails the pod
    rather than setting an empty password."""
    return kube.init_container(
        "credentials",
        image,
        [
            "sh", "-c",
            f"set -e; password=$(cat {password_file(PASSWORD_KEY)}); [ -n \"$password\" ];"
            f" echo \"ALTER USER IF EXISTS '{USER}'@'%' IDENTIFIED BY '$password';\" > {INIT_DIR}/init.sql",
        ],
        [k8s.core.v1.VolumeMountArgs(name="init", mount_path=INIT_DIR), credentials_mount],
    )


class Database(pulumi.ComponentResource):
    credentials_secret: pulumi.Output[str]
    """Name of the Secret whose ``password`` key is the Portus user's password."""

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:database:Database", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = kube.image_version(args.image)

        root_password = generated_password(f"{name}-root-password", 32, self)
        user_password = generated_password(f"{name}-portus-password", 32, self)
        credentials = kube.opaque_secret(
            f"{name}-credentials", f"{NAME}-credentials", args.namespace, COMPONENT,
            {ROOT_PASSWORD_KEY: root_password.result, PASSWORD_KEY: user_password.result}, child,
        )

        service = kube.cluster_ip_service(
            f"{name}-svc", NAME, args.namespace, COMPONENT,
            [k8s.core.v1.ServicePortArgs(name="mysql", port=PORT, target_port="mysql", app_protocol="mysql")],
            child, headless=True,
        )

        data_mount = k8s.core.v1.VolumeMountArgs(name="data", mount_path=DATA_DIR)
        credentials_mount = k8s.core.v1.VolumeMountArgs(name="credentials", mount_path=SECRETS_DIR, read_only=True)
        container = _server_container(args, data_mount, credentials_mount)
        credentials_init = _credentials_init(args.image, credentials_mount)
        k8s.apps.v1.StatefulSet(
            name,
            metadata=kube.metadata(NAME, args.namespace, COMPONENT, version),
            spec=k8s.apps.v1.StatefulSetSpecArgs(
                replicas=1,
                service_name=service.metadata.name,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=kube.selector_labels(NAME)),
                persistent_volume_claim_retention_policy=(
                    k8s.apps.v1.StatefulSetPersistentVolumeClaimRetentionPolicyArgs(
                        when_deleted=args.kept.claim_retention, when_scaled="Retain"
                    )
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=kube.labels(NAME, COMPONENT, version),
                        annotations={"checksum/secret": kube.checksum(root_password.result, user_password.result)},
                    ),
                    spec=kube.pod_spec(
                        kube.service_account(f"{name}-sa", NAME, args.namespace, COMPONENT, child),
                        RUN_AS,
                        [container],
                        [
                            kube.empty_dir("run", "16Mi"),
                            kube.empty_dir("tmp", "1Gi"),
                            kube.empty_dir("init", "1Mi", medium="Memory"),
                            kube.secret_volume("credentials", credentials.metadata.name),
                        ],
                        init_containers=[
                            kube.ownership_handover(args.image, data_mount, PREVIOUS_RUN_AS, RUN_AS),
                            credentials_init,
                        ],
                        termination_grace_period_seconds=60,
                    ),
                ),
                volume_claim_templates=[
                    k8s.core.v1.PersistentVolumeClaimArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(name="data", labels=kube.labels(NAME, COMPONENT)),
                        spec=kube.claim_spec(args.storage_size, args.storage_class),
                    )
                ],
            ),
            opts=args.kept.workload_options(
                self,
                # Claim templates are immutable: a size change must never replace the StatefulSet (and
                # orphan its data). The template keeps the size it was created with; grow the claim
                # itself (see README, "Resizing volumes").
                ignore_changes=["spec.volumeClaimTemplates"],
            ),
        )

        if args.backup.enabled:
            DatabaseBackup(f"{name}-backup", BackupArgs(
                namespace=args.namespace,
                config=args.backup,
                image=args.image,
                run_as=RUN_AS,
                host=args.host,
                port=PORT,
                database=DATABASE,
                user=USER,
                credentials_secret=credentials.metadata.name,
                password_key=PASSWORD_KEY,
                kept=args.kept,
            ), child)

        self.credentials_secret = credentials.metadata.name
        self.register_outputs({"credentialsSecret": self.credentials_secret})
