"""What every Portus container shares, web, background and one-off tasks alike: the image, the
environment ``/init`` would export, the secrets Portus reads, the trust bundle built without root, the
token key, the writable scratch directories and the public names that resolve to the proxy inside the pod."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import kube

APP_DIR = "/srv/Portus"
TOKEN_KEY_FILE = "/etc/portus/token/token.key"
TRUST_DIR = "/etc/portus/trust"
CA_BUNDLE_DIR = "/etc/portus/ca-bundle"
CA_BUNDLE_FILE = f"{CA_BUNDLE_DIR}/ca-bundle.pem"
# CAs that only Portus trusts (its directory's, its mail relay's), added to its bundle: the ``*.crt``
# files of the volume EXTRA_TRUST_VOLUME.
EXTRA_TRUST_DIR = "/etc/portus/trust-extra"
EXTRA_TRUST_VOLUME = "extra-trust"
# openSUSE's bundle of the system's trusted roots.
SYSTEM_ROOTS = "/var/lib/ca-certificates/ca-bundle.pem"
# The openSUSE image's `wwwrun` user and `www` group, which own Portus's writable directories.
RUN_AS = kube.RunAs(user=30, group=8)


@dataclass(frozen=True)
class PortusSecret:
    """A Portus setting whose value is a key of a Secret: ``env_name`` is the PORTUS_* name Portus reads."""

    env_name: str
    secret: pulumi.Input[str]
    key: str


def secret_settings(secrets: Sequence[PortusSecret]) -> list[k8s.core.v1.EnvVarArgs]:
    """How every Portus container receives its secrets: the one place that decides the delivery (an
    environment variable from the Secret's key), for the platform's own secrets and the configured ones."""
    return [kube.secret_env(secret.env_name, secret.secret, secret.key) for secret in secrets]


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
    secrets: list[PortusSecret] = field(default_factory=list)

    def container(self, name: str, command: Sequence[str], resources: kube.ResourceSpec,
                  env: Sequence[k8s.core.v1.EnvVarArgs] = (),
                  mounts: Sequence[k8s.core.v1.VolumeMountArgs] = (), **extra: object) -> k8s.core.v1.ContainerArgs:
        return k8s.core.v1.ContainerArgs(
            name=name,
            image=self.image,
            command=list(command),
            env=[*self.env, *secret_settings(self.secrets), *env],
            volume_mounts=[*self.mounts, *mounts],
            resources=kube.resources(resources),
            security_context=kube.restricted_container_security(),
            **extra,  # type: ignore[arg-type]
        )

    def pod_spec(self, containers: Sequence[k8s.core.v1.ContainerArgs],
                 volumes: Sequence[k8s.core.v1.VolumeArgs] = (),
                 init_containers: Sequence[k8s.core.v1.ContainerArgs] = ()) -> k8s.core.v1.PodSpecArgs:
        return kube.pod_spec(
            self.account, RUN_AS, containers, [*self.volumes, *volumes],
            host_aliases=self.host_aliases or None,
            init_containers=[*self.init_containers, *init_containers],
        )


def trust_bundle_init(image: str, extra_trust: bool = False) -> k8s.core.v1.ContainerArgs:
    """The system roots plus the platform CA (and, with ``extra_trust``, the ``*.crt`` files of the
    EXTRA_TRUST_VOLUME volume), assembled without root (update-ca-certificates needs it).

    Without the system roots only outside services would fail, so that is a warning."""
    extra = f" {EXTRA_TRUST_DIR}/*.crt" if extra_trust else ""
    mounts = [k8s.core.v1.VolumeMountArgs(name="trust", mount_path=TRUST_DIR, read_only=True)]
    if extra_trust:
        mounts.append(
            k8s.core.v1.VolumeMountArgs(name=EXTRA_TRUST_VOLUME, mount_path=EXTRA_TRUST_DIR, read_only=True)
        )
    return kube.init_container(
        "ca-bundle",
        image,
        [
            "sh", "-c",
            f"{{ cat {SYSTEM_ROOTS} || echo 'warning: no system CA bundle' >&2; cat {TRUST_DIR}/ca.crt{extra}; }}"
            f" > {CA_BUNDLE_FILE}",
        ],
        [*mounts, k8s.core.v1.VolumeMountArgs(name="ca-bundle", mount_path=CA_BUNDLE_DIR)],
    )
