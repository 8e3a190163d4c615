"""What every Portus container shares, web, background and one-off tasks alike: the image, the
environment ``/init`` would export, the trust bundle built without root, the token key, the writable
scratch directories and the public names that resolve to the proxy inside the pod."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi_kubernetes as k8s

from components import kube
from components.database import DatabaseConnection

APP_DIR = "/srv/Portus"
TOKEN_KEY_FILE = "/etc/portus/token/token.key"
TRUST_DIR = "/etc/portus/trust"
CA_BUNDLE_DIR = "/etc/portus/ca-bundle"
# openSUSE's bundle of the system's trusted roots.
SYSTEM_ROOTS = "/var/lib/ca-certificates/ca-bundle.pem"
# The openSUSE image's `wwwrun` user and `www` group, which own Portus's writable directories.
RUN_AS = kube.RunAs(user=30, group=8)


@dataclass
class PortusRuntime:
    """The parts of a Portus pod that do not depend on what the pod runs."""

    image: str
    account: k8s.core.v1.ServiceAccount
    env: list[k8s.core.v1.EnvVarArgs]
    mounts: list[k8s.core.v1.VolumeMountArgs]
    volumes: list[k8s.core.v1.VolumeArgs]
    init_containers: list[k8s.core.v1.ContainerArgs]
    host_aliases: list[k8s.core.v1.HostAliasArgs] = field(default_factory=list)

    def container(self, name: str, command: Sequence[str], resources: kube.ResourceSpec,
                  env: Sequence[k8s.core.v1.EnvVarArgs] = (),
                  mounts: Sequence[k8s.core.v1.VolumeMountArgs] = (), **extra: object) -> k8s.core.v1.ContainerArgs:
        return k8s.core.v1.ContainerArgs(
            name=name,
            image=self.image,
            command=list(command),
            env=[*self.env, *env],
            volume_mounts=[*self.mounts, *mounts],
            resources=kube.resources(resources),
            security_context=kube.restricted_container_security(),
            **extra,  # type: ignore[arg-type]
        )

    def pod_spec(self, containers: Sequence[k8s.core.v1.ContainerArgs], restart_policy: str | None = None,
                 volumes: Sequence[k8s.core.v1.VolumeArgs] = (),
                 init_containers: Sequence[k8s.core.v1.ContainerArgs] = ()) -> k8s.core.v1.PodSpecArgs:
        return kube.pod_spec(
            self.account, RUN_AS, containers, [*self.volumes, *volumes],
            host_aliases=self.host_aliases or None,
            init_containers=[*self.init_containers, *init_containers],
            restart_policy=restart_policy,
        )


def database_settings(connection: DatabaseConnection) -> dict[str, str]:
    """The connection settings Portus reads from env, all but the password."""
    return {
        "PORTUS_DB_ADAPTER": connection.adapter,
        "PORTUS_DB_HOST": connection.host,
        "PORTUS_DB_PORT": str(connection.port),
        "PORTUS_DB_DATABASE": connection.database,
        "PORTUS_DB_USERNAME": connection.user,
        "PORTUS_DB_POOL": "5",
    }


def database_password(connection: DatabaseConnection) -> k8s.core.v1.EnvVarArgs:
    """The one way the database password reaches every Portus container (web, background, Jobs)."""
    return kube.secret_env("PORTUS_DB_PASSWORD", connection.password_secret, connection.password_key)


def trust_bundle_init(image: str) -> k8s.core.v1.ContainerArgs:
    """The system roots plus the platform CA, assembled without root (update-ca-certificates needs it).

    Without the system roots only outside services would fail, so that is a warning."""
    return kube.init_container(
        "ca-bundle",
        image,
        [
            "sh", "-c",
            f"{{ cat {SYSTEM_ROOTS} || echo 'warning: no system CA bundle' >&2; cat {TRUST_DIR}/ca.crt; }}"
            f" > {CA_BUNDLE_DIR}/ca-bundle.pem",
        ],
        [
            k8s.core.v1.VolumeMountArgs(name="trust", mount_path=TRUST_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="ca-bundle", mount_path=CA_BUNDLE_DIR),
        ],
    )
