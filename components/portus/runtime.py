"""What every Portus container shares, web, background and one-off tasks alike: the image, the
environment ``/init`` would export, the secrets as files, the entry that starts Portus, the trust
bundle built without root, the token key, the writable scratch directories and the token realm's host,
which resolves inside the pod to where the realm is.

The entry
---------
The image's ``/init`` runs everything through ``portusctl exec``, which starts ``bundler exec ...`` as
a child and never passes a signal on (openSUSE/portusctl ``exec.go``: ``cmd.Run()``), under a bash
that is PID 1 and so ignores SIGTERM. A rollout then kills Puma mid-request once the grace period is
over. The entry does what ``portusctl exec`` does (``exec.go``: ``cd /srv/Portus``, ``RAILS_ENV``,
``GEM_PATH`` and ``RUBYLIB`` of the vendored gems, the vendored ``bin/bundler.ruby<X.Y>``) and then
``exec``s it, so Ruby is the container's PID 1: Ruby installs its own SIGTERM handler, and Puma 3.10
traps SIGTERM for a graceful stop (``lib/puma/cluster.rb``: the master stops its workers, each
finishes its requests in flight). ``puma -C config/puma.rb`` is what ``pumactl -F ... start`` runs
in-process (``lib/puma/control_cli.rb#start``).

Before that, it reads each Portus secret from the file a Secret volume mounts, as ``/init``'s
``file_env`` does with ``<NAME>_FILE`` (SUSE/Portus 2.4.3 ``docker/init``): the pod spec carries only
file paths, never a secret through an env ``secretKeyRef``. Any part adds a secret by adding a
``PortusSecret``; the entry script, the volume and the ``_FILE`` variables all follow from that list.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.database import DatabaseConnection

APP_DIR = "/srv/Portus"
TOKEN_KEY_FILE = "/etc/portus/token/token.key"
TRUST_DIR = "/etc/portus/trust"
# The chain clients of the edge must trust: Portus reaches the public token realm through the edge.
EDGE_TRUST_DIR = "/etc/portus/edge-trust"
CA_BUNDLE_DIR = "/etc/portus/ca-bundle"
CA_BUNDLE_FILE = f"{CA_BUNDLE_DIR}/ca-bundle.pem"
# CAs that only Portus trusts (its directory's, its mail relay's), added to its bundle: the ``*.crt``
# files of the volume EXTRA_TRUST_VOLUME.
EXTRA_TRUST_DIR = "/etc/portus/trust-extra"
EXTRA_TRUST_VOLUME = "extra-trust"
SECRETS_DIR = "/etc/portus/secrets"
SECRETS_VOLUME = "portus-secret-files"
# openSUSE's bundle of the system's trusted roots.
SYSTEM_ROOTS = "/var/lib/ca-certificates/ca-bundle.pem"
# The openSUSE image's `wwwrun` user and `www` group, which own Portus's writable directories.
RUN_AS = kube.RunAs(user=30, group=8)
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@dataclass(frozen=True)
class PortusSecret:
    """A setting Portus reads from its environment whose value is a key of a Kubernetes Secret.

    The Secret's key is mounted as ``SECRETS_DIR/<name>``, the container gets ``<name>_FILE`` with that
    path, and the entry exports ``<name>`` from the file before Portus starts."""

    name: str
    """The environment variable Portus reads, e.g. ``PORTUS_DB_PASSWORD``."""
    secret: pulumi.Input[str]
    key: str

    def __post_init__(self) -> None:
        if not _ENV_NAME.fullmatch(self.name):
            raise ValueError(f"not an environment variable name: {self.name!r}")

    @property
    def path(self) -> str:
        return f"{SECRETS_DIR}/{self.name}"


# Every step runs through the bundler portusctl would run; the last one replaces the shell.
_ENTRY_PROLOGUE = """\
set -eu
# <NAME> from the file <NAME>_FILE names, as the image's /init does (file_env).
portus_secret() {
  if printenv "$1" >/dev/null; then echo "portus-entry: both $1 and $1_FILE are set" >&2; exit 1; fi
  file=$(printenv "$1_FILE") || { echo "portus-entry: $1_FILE is not set" >&2; exit 1; }
  value=$(cat "$file")
  export "$1=$value"
  unset "$1_FILE"
}
"""
_ENTRY_BUNDLER = f"""\
# What `portusctl exec` sets up (openSUSE/portusctl exec.go), without its child process.
cd {APP_DIR}
ruby_version=$(cat .ruby-version)
vendor={APP_DIR}/vendor/bundle/ruby/${{ruby_version%.*}}.0
bundler_lib=
for dir in "$vendor"/gems/bundler*; do if [ -d "$dir/lib" ]; then bundler_lib=$dir/lib; break; fi; done
if [ -z "$bundler_lib" ]; then echo "portus-entry: no bundler gem under $vendor/gems" >&2; exit 1; fi
export RAILS_ENV=production GEM_PATH="$vendor" RUBYLIB="$bundler_lib"
bundler=$vendor/bin/bundler.ruby${{ruby_version%.*}}
"""


def entry_script(secret_names: Sequence[str], steps: Sequence[Sequence[str]]) -> str:
    """The shell script a Portus container runs: secrets from files, then each step through bundler,
    the last one ``exec``'d so that it is PID 1. A failing step stops the script (``set -e``)."""
    if not steps:
        raise ValueError("a Portus container runs at least one step")
    lines = [_ENTRY_PROLOGUE, *(f"portus_secret {name}\n" for name in secret_names), _ENTRY_BUNDLER]
    for index, step in enumerate(steps):
        prefix = "exec " if index == len(steps) - 1 else ""
        lines.append(f'{prefix}"$bundler" exec {shlex.join(step)}\n')
    return "".join(lines)


@dataclass
class PortusRuntime:
    """The parts of a Portus pod that do not depend on what the pod runs."""

    image: str
    account: k8s.core.v1.ServiceAccount
    env: list[k8s.core.v1.EnvVarArgs]
    mounts: list[k8s.core.v1.VolumeMountArgs]
    volumes: list[k8s.core.v1.VolumeArgs]
    init_containers: list[k8s.core.v1.ContainerArgs]
    secrets: list[PortusSecret] = field(default_factory=list)
    """Secrets every Portus container reads (database password, Rails secret, ``portus`` password...)."""
    host_aliases: list[k8s.core.v1.HostAliasArgs] = field(default_factory=list)

    def container(self, name: str, steps: Sequence[Sequence[str]], resources: kube.ResourceSpec,
                  env: Sequence[k8s.core.v1.EnvVarArgs] = (),
                  mounts: Sequence[k8s.core.v1.VolumeMountArgs] = (),
                  secrets: Sequence[PortusSecret] = (), **extra: object) -> k8s.core.v1.ContainerArgs:
        """A container that runs ``steps`` (each a command for ``bundler exec``) through the entry,
        with the runtime's secrets plus ``secrets`` as files."""
        every_secret = [*self.secrets, *secrets]
        return k8s.core.v1.ContainerArgs(
            name=name,
            image=self.image,
            command=["/bin/sh", "-c", entry_script([s.name for s in every_secret], steps)],
            env=[
                *self.env,
                *kube.env({f"{s.name}_FILE": s.path for s in every_secret}),
                *env,
            ],
            volume_mounts=[
                *self.mounts,
                k8s.core.v1.VolumeMountArgs(name=SECRETS_VOLUME, mount_path=SECRETS_DIR, read_only=True),
                *mounts,
            ],
            resources=kube.resources(resources),
            security_context=kube.restricted_container_security(),
            **extra,  # type: ignore[arg-type]
        )

    def pod_spec(self, containers: Sequence[k8s.core.v1.ContainerArgs],
                 volumes: Sequence[k8s.core.v1.VolumeArgs] = (),
                 init_containers: Sequence[k8s.core.v1.ContainerArgs] = (),
                 secrets: Sequence[PortusSecret] = (), **extra: object) -> k8s.core.v1.PodSpecArgs:
        """``secrets`` are the containers' own secrets beyond the runtime's: they join its volume."""
        return kube.pod_spec(
            self.account, RUN_AS, containers, [*self.volumes, secret_files_volume([*self.secrets, *secrets]),
                                               *volumes],
            host_aliases=self.host_aliases or None,
            init_containers=[*self.init_containers, *init_containers],
            **extra,
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


def database_password(connection: DatabaseConnection) -> PortusSecret:
    """The one way the database password reaches every Portus container (web, background, Jobs)."""
    return PortusSecret("PORTUS_DB_PASSWORD", connection.password_secret, connection.password_key)


def secret_files_volume(secrets: Sequence[PortusSecret]) -> k8s.core.v1.VolumeArgs:
    """One volume with each secret as a file named after its variable, readable by the pod's group."""
    return k8s.core.v1.VolumeArgs(
        name=SECRETS_VOLUME,
        projected=k8s.core.v1.ProjectedVolumeSourceArgs(
            default_mode=0o440,
            sources=[
                k8s.core.v1.VolumeProjectionArgs(secret=k8s.core.v1.SecretProjectionArgs(
                    name=secret.secret, items=[k8s.core.v1.KeyToPathArgs(key=secret.key, path=secret.name)],
                ))
                for secret in secrets
            ],
        ),
    )


def trust_bundle_init(image: str, extra_trust: bool = False) -> k8s.core.v1.ContainerArgs:
    """The system roots, the platform CA (every hop inside the cluster), the edge's chain (the token realm
    under the public names; empty when a public CA, among the system roots, signs the edge) and, with
    ``extra_trust``, the ``*.crt`` files of the EXTRA_TRUST_VOLUME volume, assembled without root
    (update-ca-certificates needs it).

    Without the system roots only outside services (or an edge signed by a public CA) would fail, so that
    is a warning."""
    extra = f" {EXTRA_TRUST_DIR}/*.crt" if extra_trust else ""
    mounts = [
        k8s.core.v1.VolumeMountArgs(name="trust", mount_path=TRUST_DIR, read_only=True),
        k8s.core.v1.VolumeMountArgs(name="edge-trust", mount_path=EDGE_TRUST_DIR, read_only=True),
    ]
    if extra_trust:
        mounts.append(
            k8s.core.v1.VolumeMountArgs(name=EXTRA_TRUST_VOLUME, mount_path=EXTRA_TRUST_DIR, read_only=True)
        )
    return kube.init_container(
        "ca-bundle",
        image,
        [
            "sh", "-c",
            f"{{ cat {SYSTEM_ROOTS} || echo 'warning: no system CA bundle' >&2;"
            f" cat {TRUST_DIR}/ca.crt {EDGE_TRUST_DIR}/ca.crt{extra}; }} > {CA_BUNDLE_FILE}",
        ],
        [*mounts, k8s.core.v1.VolumeMountArgs(name="ca-bundle", mount_path=CA_BUNDLE_DIR)],
    )
