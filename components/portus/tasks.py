"""One-off tasks in the Portus image: the database migration that runs before any Portus pod rolls,
and the bootstrap that finishes the setup (first administrator, registry record) without the web UI."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.portus.runtime import APP_DIR, PortusRuntime, PortusSecret

MIGRATE_COMPONENT = "migrate"
BOOTSTRAP_COMPONENT = "bootstrap"
BOOTSTRAP_DIR = "/etc/portus/bootstrap"
BOOTSTRAP_SCRIPT = Path(__file__).parent / "scripts" / "bootstrap.rb"


@dataclass
class RegistryRecord:
    """What Portus stores about its registry; the token service matches ``service`` against these."""

    name: str
    hostname: str
    """``host:port`` Portus itself uses to reach the registry inside the cluster."""
    external_hostname: str
    """``host[:port]`` Docker clients push to: the registry's token ``service``."""


@dataclass
class TaskJob:
    """A one-off task in the Portus image, with the same environment and trust as the Portus pods."""

    component: str
    steps: list[list[str]]
    """Commands run one after the other through the Portus entry (``bundler exec``)."""
    run_inputs: tuple[str, ...]
    """What the task depends on: a change re-runs it (under a new Job name)."""
    depends_on: list[pulumi.Resource]
    env: list[k8s.core.v1.EnvVarArgs] = field(default_factory=list)
    secrets: list[PortusSecret] = field(default_factory=list)
    mounts: list[k8s.core.v1.VolumeMountArgs] = field(default_factory=list)
    volumes: list[k8s.core.v1.VolumeArgs] = field(default_factory=list)
    init_containers: list[k8s.core.v1.ContainerArgs] = field(default_factory=list)
    annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)


def _job_suffix(*inputs: str) -> str:
    """Jobs are immutable: a new name per set of inputs makes Pulumi replace (and so re-run) them."""
    return hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:10]


def task_job(resource_name: str, name_prefix: str, namespace: pulumi.Input[str], runtime: PortusRuntime,
             resources: kube.ResourceSpec, task: TaskJob, parent: pulumi.Resource) -> k8s.batch.v1.Job:
    version = kube.image_version(runtime.image)
    steps = tuple(" ".join(step) for step in task.steps)
    job_name = f"{name_prefix}-{task.component}-{_job_suffix(runtime.image, *steps, *task.run_inputs)}"
    container = runtime.container(
        task.component, task.steps, resources, task.env, task.mounts, secrets=task.secrets,
    )
    return kube.job(
        f"{resource_name}-{task.component}",
        kube.metadata(job_name, namespace, task.component, version),
        k8s.meta.v1.ObjectMetaArgs(labels=kube.labels(job_name, task.component, version), annotations=task.annotations),
        runtime.pod_spec(
            [container],
            volumes=task.volumes,
            init_containers=task.init_containers,
            secrets=task.secrets,
        ),
        pulumi.ResourceOptions(parent=parent, depends_on=task.depends_on),
    )


# Portus 2.4.3's `portus:db:configure` (lib/tasks/portus/db.rake) loads the schema and then runs
# `db:seed` only when the database has at most one table; otherwise it only migrates. A first run that
# died between the two leaves a loaded schema without the seed's one row, the hidden `portus` user
# (db/seeds.rb: `User.create_portus_user!`), and every retry then just migrates: the registry client,
# which signs in as `portus`, never gets a token. The seed itself cannot be re-run (it exits as soon as
# any user exists), so the migration follows `configure` with the seed's effect made idempotent. The
# steps are part of the Job's name: a stack set up before this runs the migration once more and heals.
ENSURE_PORTUS_USER = 'User.create_portus_user! unless User.exists?(username: "portus")'


def migration(depends_on: list[pulumi.Resource], image: str) -> TaskJob:
    """``rake portus:db:configure`` (create, migrate, or load the schema and seed, as the database
    needs), then the hidden ``portus`` user if a half-done first run left it out.

    Pulumi awaits it before web and background pods roll onto a new image. Rails rewrites db/schema.rb
    after migrating, so the task works on a writable copy of db/."""
    return TaskJob(
        component=MIGRATE_COMPONENT,
        steps=[["rake", "portus:db:configure"], ["rails", "runner", ENSURE_PORTUS_USER]],
        run_inputs=(),
        depends_on=depends_on,
        mounts=[k8s.core.v1.VolumeMountArgs(name="app-db", mount_path=f"{APP_DIR}/db")],
        volumes=[kube.empty_dir("app-db", "64Mi")],
        init_containers=[kube.init_container(
            "app-db",
            image,
            ["cp", "-R", f"{APP_DIR}/db/.", "/writable-db/"],
            [k8s.core.v1.VolumeMountArgs(name="app-db", mount_path="/writable-db")],
        )],
    )


def bootstrap(record: RegistryRecord, admin_username: str, admin_email: str,
              admin_password: PortusSecret, script: str, script_config_map: pulumi.Input[str],
              depends_on: list[pulumi.Resource]) -> TaskJob:
    """``rails runner bootstrap.rb``: the first administrator and the registry record, idempotently.

    ``script`` is the text of BOOTSTRAP_SCRIPT, which ``script_config_map`` holds."""
    return TaskJob(
        component=BOOTSTRAP_COMPONENT,
        steps=[["rails", "runner", f"{BOOTSTRAP_DIR}/{BOOTSTRAP_SCRIPT.name}"]],
        run_inputs=(script, admin_username, admin_email, record.name, record.hostname, record.external_hostname),
        depends_on=depends_on,
        env=kube.env({
            "BOOTSTRAP_ADMIN_USERNAME": admin_username,
            "BOOTSTRAP_ADMIN_EMAIL": admin_email,
            "BOOTSTRAP_REGISTRY_NAME": record.name,
            "BOOTSTRAP_REGISTRY_HOSTNAME": record.hostname,
            "BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME": record.external_hostname,
        }),
        secrets=[admin_password],
        mounts=[k8s.core.v1.VolumeMountArgs(name="bootstrap", mount_path=BOOTSTRAP_DIR, read_only=True)],
        volumes=[kube.config_map_volume("bootstrap", script_config_map)],
        annotations={"checksum/script": kube.checksum(script)},
    )
