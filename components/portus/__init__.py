"""Portus: the web UI and token service, the background worker, the database migration Job that runs
before they roll, and the bootstrap Job that finishes the setup without the web UI.

The image's own entrypoint (``/init``) is bypassed on purpose, for three reasons found in its source:
it runs ``update-ca-certificates`` as root (so it cannot run non-root); it treats a database with pending
migrations as empty and runs ``rake db:setup``, which drops every table on upgrade; and at log level
``debug`` it prints the environment, secrets included. The containers run ``portusctl exec`` directly with
the environment ``/init`` would have set, and the migration Job runs the idempotent
``rake portus:db:configure`` (create, migrate, or load schema and seed) before any Portus pod rolls.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random

from components import kube
from components.config import ResourceSpec
from components.database import PASSWORD_KEY, generated_password
from components.pki import ServerCertificate

NAME = "portus"
BACKGROUND_NAME = "portus-background"
MIGRATE_COMPONENT = "migrate"
BOOTSTRAP_COMPONENT = "bootstrap"
COMPONENT = "portus"
PORT = 3000
PING_PATH = "/api/v1/_ping"
APP_DIR = "/srv/Portus"
TLS_DIR = "/etc/portus/tls"
TOKEN_KEY_FILE = "/etc/portus/token/token.key"
TRUST_DIR = "/etc/portus/trust"
CA_BUNDLE_DIR = "/etc/portus/ca-bundle"
# openSUSE's bundle of the system's trusted roots.
SYSTEM_ROOTS = "/var/lib/ca-certificates/ca-bundle.pem"
BOOTSTRAP_DIR = "/etc/portus/bootstrap"
BOOTSTRAP_SCRIPT = Path(__file__).parent / "scripts" / "bootstrap.rb"
# The openSUSE image's `wwwrun` user and `www` group, which own Portus's writable directories.
RUN_AS = kube.RunAs(user=30, group=8)
SECRET_KEY_BASE_KEY = "secret-key-base"
PORTUS_PASSWORD_KEY = "portus-password"
ADMIN_PASSWORD_KEY = "admin-password"
# Portus pulls a large image and boots Rails; on a cold node that outlasts Pulumi's 10-minute default.
SLOW_START = pulumi.CustomTimeouts(create="20m", update="20m")


@dataclass
class DatabaseConnection:
    host: str
    port: int
    database: str
    user: str
    credentials_secret: pulumi.Input[str]
    """Secret whose ``password`` key is the user's password."""


@dataclass
class RegistryRecord:
    """What Portus stores about its registry; the token service matches ``service`` against these."""

    name: str
    hostname: str
    """``host:port`` Portus itself uses to reach the registry inside the cluster."""
    external_hostname: str
    """``host[:port]`` Docker clients push to: the registry's token ``service``."""


@dataclass
class PortusArgs:
    namespace: pulumi.Input[str]
    image: str
    replicas: int
    web_resources: ResourceSpec
    background_resources: ResourceSpec
    fqdn: str
    """``PORTUS_MACHINE_FQDN_VALUE``: the public name and the ``iss`` of the tokens Portus signs."""
    public_hosts: list[str]
    proxy_cluster_ip: pulumi.Input[str]
    """The public names resolve to the proxy inside Portus's pods, so the token realm works there too."""
    log_level: str
    signup_enabled: bool
    database: DatabaseConnection
    certificate: ServerCertificate
    token_key_pem: pulumi.Input[str]
    trust_bundle: pulumi.Input[str]
    registry: RegistryRecord
    admin_username: str
    admin_email: str
    wait_for: list[pulumi.Resource] = field(default_factory=list)
    """What must be ready before the database migration, and so before any Portus pod, starts. The
    Service is not held back: the proxy resolves its name when it starts."""


def _job_suffix(*inputs: str) -> str:
    """Jobs are immutable: a new name per set of inputs makes Pulumi replace (and so re-run) them."""
    return hashlib.sha256("\0".join(inputs).encode()).hexdigest()[:10]


@dataclass
class TaskJob:
    """A one-off task in the Portus image, with the same environment and trust as the Portus pods."""

    component: str
    command: list[str]
    run_inputs: tuple[str, ...]
    """What the task depends on: a change re-runs it (under a new Job name)."""
    depends_on: list[pulumi.Resource]
    env: list[k8s.core.v1.EnvVarArgs] = field(default_factory=list)
    mounts: list[k8s.core.v1.VolumeMountArgs] = field(default_factory=list)
    volumes: list[k8s.core.v1.VolumeArgs] = field(default_factory=list)
    init_containers: list[k8s.core.v1.ContainerArgs] = field(default_factory=list)
    annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)


class Portus(pulumi.ComponentResource):
    service: k8s.core.v1.Service
    admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: PortusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:portus:Portus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = kube.image_version(args.image)

        secret_key_base = random.RandomId(
            f"{name}-secret-key-base", byte_length=64,
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["hex", "b64Std", "b64Url", "dec"]),
        )
        portus_password = generated_password(f"{name}-portus-password", 32, self)
        admin_password = generated_password(f"{name}-admin-password", 24, self)
        self.admin_password = pulumi.Output.secret(admin_password.result)
        secrets = k8s.core.v1.Secret(
            f"{name}-secrets",
            metadata=kube.metadata(f"{NAME}-secrets", args.namespace, COMPONENT),
            type="Opaque",
            string_data={
                # Rails' typical 128 hex characters.
                SECRET_KEY_BASE_KEY: secret_key_base.hex,
                PORTUS_PASSWORD_KEY: portus_password.result,
                ADMIN_PASSWORD_KEY: admin_password.result,
                "token.key": args.token_key_pem,
            },
            opts=child,
        )
        tls_secret = kube.tls_secret(f"{name}-tls", f"{NAME}-tls", args.namespace, COMPONENT, args.certificate, child)
        self.service = kube.cluster_ip_service(
            f"{name}-svc", NAME, args.namespace, COMPONENT,
            [k8s.core.v1.ServicePortArgs(name="https", port=PORT, target_port="https", app_protocol="https")],
            child,
        )
        bootstrap_script = BOOTSTRAP_SCRIPT.read_text()
        bootstrap_config = k8s.core.v1.ConfigMap(
            f"{name}-bootstrap",
            metadata=kube.metadata(f"{NAME}-bootstrap", args.namespace, COMPONENT),
            data={BOOTSTRAP_SCRIPT.name: bootstrap_script},
            opts=child,
        )
        account = kube.service_account(f"{name}-sa", NAME, args.namespace, COMPONENT, child)

        common_env = [
            *kube.env({
                # What /init exports before it starts anything.
                "RAILS_ENV": "production",
                "RACK_ENV": "production",
                "CCONFIG_PREFIX": "PORTUS",
                "HOME": "/tmp",
                "PORTUS_MACHINE_FQDN_VALUE": args.fqdn,
                "PORTUS_DB_ADAPTER": "mysql2",
                "PORTUS_DB_HOST": args.database.host,
                "PORTUS_DB_PORT": str(args.database.port),
                "PORTUS_DB_DATABASE": args.database.database,
                "PORTUS_DB_USERNAME": args.database.user,
                "PORTUS_DB_POOL": "5",
                "PORTUS_KEY_PATH": TOKEN_KEY_FILE,
                "PORTUS_LOG_LEVEL": args.log_level,
                "PORTUS_SIGNUP_ENABLED": str(args.signup_enabled).lower(),
                # The bootstrap Job creates the administrator: a stranger's first sign-up must not.
                "PORTUS_FIRST_USER_ADMIN_ENABLED": "false",
                "PORTUS_ANONYMOUS_BROWSING_ENABLED": "false",
                "PORTUS_DELETE_ENABLED": "true",
                "PORTUS_CHECK_SSL_USAGE_ENABLED": "true",
                # Ruby's OpenSSL reads this bundle: the system roots plus the platform CA.
                "SSL_CERT_FILE": f"{CA_BUNDLE_DIR}/ca-bundle.pem",
            }),
            kube.secret_env("PORTUS_DB_PASSWORD", args.database.credentials_secret, PASSWORD_KEY),
            kube.secret_env("PORTUS_SECRET_KEY_BASE", secrets.metadata.name, SECRET_KEY_BASE_KEY),
            kube.secret_env("PORTUS_PASSWORD", secrets.metadata.name, PORTUS_PASSWORD_KEY),
        ]
        common_mounts = [
            k8s.core.v1.VolumeMountArgs(name="secrets", mount_path=TOKEN_KEY_FILE, sub_path="token.key",
                                        read_only=True),
            k8s.core.v1.VolumeMountArgs(name="ca-bundle", mount_path=CA_BUNDLE_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="app-tmp", mount_path=f"{APP_DIR}/tmp"),
            k8s.core.v1.VolumeMountArgs(name="app-log", mount_path=f"{APP_DIR}/log"),
            k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
        ]
        common_volumes = [
            kube.secret_volume(
                "secrets", secrets.metadata.name, [k8s.core.v1.KeyToPathArgs(key="token.key", path="token.key")]
            ),
            kube.config_map_volume("trust", args.trust_bundle),
            kube.empty_dir("ca-bundle", "8Mi"),
            kube.empty_dir("app-tmp", "512Mi"),
            kube.empty_dir("app-log", "256Mi"),
            kube.empty_dir("tmp", "256Mi"),
        ]
        # The system roots plus the platform CA, assembled without root (update-ca-certificates needs
        # it). Without the system roots only outside services would fail, so that is a warning.
        trust_init = kube.init_container(
            "ca-bundle",
            args.image,
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
        host_aliases = [k8s.core.v1.HostAliasArgs(ip=args.proxy_cluster_ip, hostnames=args.public_hosts)]

        def pod_spec(containers: list[k8s.core.v1.ContainerArgs], restart_policy: str | None = None,
                     extra_volumes: list[k8s.core.v1.VolumeArgs] | None = None,
                     extra_init: list[k8s.core.v1.ContainerArgs] | None = None) -> k8s.core.v1.PodSpecArgs:
            return kube.pod_spec(
                account, RUN_AS, containers, [*common_volumes, *(extra_volumes or [])],
                host_aliases=host_aliases,
                init_containers=[trust_init, *(extra_init or [])],
                restart_policy=restart_policy,
            )

        def task_job(task: TaskJob) -> k8s.batch.v1.Job:
            job_name = f"{NAME}-{task.component}-{_job_suffix(args.image, *task.run_inputs)}"
            return k8s.batch.v1.Job(
                f"{name}-{task.component}",
                metadata=kube.metadata(job_name, args.namespace, task.component, version),
                spec=k8s.batch.v1.JobSpecArgs(
                    backoff_limit=6,
                    active_deadline_seconds=1800,
                    template=k8s.core.v1.PodTemplateSpecArgs(
                        metadata=k8s.meta.v1.ObjectMetaArgs(
                            labels=kube.labels(job_name, task.component, version), annotations=task.annotations
                        ),
                        spec=pod_spec(
                            [k8s.core.v1.ContainerArgs(
                                name=task.component,
                                image=args.image,
                                command=task.command,
                                env=[*common_env, *task.env],
                                volume_mounts=[*common_mounts, *task.mounts],
                                resources=kube.resources(args.background_resources),
                                security_context=kube.restricted_container_security(),
                            )],
                            restart_policy="OnFailure",
                            extra_volumes=task.volumes,
                            extra_init=task.init_containers,
                        ),
                    ),
                ),
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=task.depends_on, delete_before_replace=True,
                    custom_timeouts=SLOW_START,
                ),
            )

        # Runs (and is awaited by Pulumi) before web and background pods roll onto a new image. Rails
        # rewrites db/schema.rb after migrating, so the Job works on a writable copy of db/.
        migration = task_job(TaskJob(
            component=MIGRATE_COMPONENT,
            command=["portusctl", "exec", "rake", "portus:db:configure"],
            run_inputs=(),
            depends_on=[secrets, *args.wait_for],
            mounts=[k8s.core.v1.VolumeMountArgs(name="app-db", mount_path=f"{APP_DIR}/db")],
            volumes=[kube.empty_dir("app-db", "64Mi")],
            init_containers=[kube.init_container(
                "app-db",
                args.image,
                ["cp", "-R", f"{APP_DIR}/db/.", "/writable-db/"],
                [k8s.core.v1.VolumeMountArgs(name="app-db", mount_path="/writable-db")],
            )],
        ))

        web_env = [
            *common_env,
            *kube.env({
                "PORTUS_PUMA_HOST": f"0.0.0.0:{PORT}",
                "PORTUS_PUMA_TLS_KEY": f"{TLS_DIR}/tls.key",
                "PORTUS_PUMA_TLS_CERT": f"{TLS_DIR}/tls.crt",
                "PORTUS_PUMA_WORKERS": "2",
                "PORTUS_PUMA_MAX_THREADS": "4",
                # No shared volume with the proxy: Puma serves the precompiled assets itself.
                "RAILS_SERVE_STATIC_FILES": "true",
            }),
        ]
        pod_annotations = {
            "checksum/secret": kube.checksum(
                secret_key_base.hex, portus_password.result, args.token_key_pem,
                args.certificate.cert_pem, args.certificate.private_key_pem,
            ),
        }
        web = kube.deployment(
            name, NAME, args.namespace, COMPONENT, version, args.replicas,
            pod_spec(
                [k8s.core.v1.ContainerArgs(
                    name=NAME,
                    image=args.image,
                    # The same command /init runs, without its database handling.
                    command=["portusctl", "exec", f"pumactl -F {APP_DIR}/config/puma.rb start"],
                    ports=[k8s.core.v1.ContainerPortArgs(name="https", container_port=PORT)],
                    env=web_env,
                    volume_mounts=[
                        *common_mounts,
                        k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_DIR, read_only=True),
                    ],
                    # Puma boots Rails and checks assets: minutes on a cold node.
                    startup_probe=kube.https_probe(PING_PATH, "https", period=10, failures=60),
                    readiness_probe=kube.https_probe(PING_PATH, "https", period=10),
                    liveness_probe=kube.https_probe(PING_PATH, "https", period=20, failures=6),
                    resources=kube.resources(args.web_resources),
                    security_context=kube.restricted_container_security(),
                )],
                extra_volumes=[kube.secret_volume("tls", tls_secret.metadata.name)],
            ),
            pod_annotations,
            pulumi.ResourceOptions(parent=self, depends_on=[migration], custom_timeouts=SLOW_START),
        )
        if args.replicas > 1:
            kube.disruption_budget(f"{name}-pdb", NAME, args.namespace, COMPONENT,
                                   pulumi.ResourceOptions(parent=self, depends_on=[web]))

        # The background worker has no port to probe: it is the container's only process, so the
        # container exits (and is restarted) when it fails.
        kube.deployment(
            f"{name}-background", BACKGROUND_NAME, args.namespace, "background", version, 1,
            pod_spec([k8s.core.v1.ContainerArgs(
                name="background",
                image=args.image,
                command=["portusctl", "exec", "rails", "r", f"{APP_DIR}/bin/background.rb"],
                env=[*common_env, *kube.env({"PORTUS_BACKGROUND": "true"})],
                volume_mounts=common_mounts,
                resources=kube.resources(args.background_resources),
                security_context=kube.restricted_container_security(),
            )]),
            pod_annotations,
            pulumi.ResourceOptions(parent=self, depends_on=[migration]),
            # Two workers would process the same registry events twice.
            recreate=True,
        )

        record = args.registry
        task_job(TaskJob(
            component=BOOTSTRAP_COMPONENT,
            command=["portusctl", "exec", "rails", "r", f"{BOOTSTRAP_DIR}/{BOOTSTRAP_SCRIPT.name}"],
            run_inputs=(bootstrap_script, args.admin_username, args.admin_email,
                        record.name, record.hostname, record.external_hostname),
            depends_on=[migration],
            env=[
                *kube.env({
                    "BOOTSTRAP_ADMIN_USERNAME": args.admin_username,
                    "BOOTSTRAP_ADMIN_EMAIL": args.admin_email,
                    "BOOTSTRAP_REGISTRY_NAME": record.name,
                    "BOOTSTRAP_REGISTRY_HOSTNAME": record.hostname,
                    "BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME": record.external_hostname,
                }),
                kube.secret_env("BOOTSTRAP_ADMIN_PASSWORD", secrets.metadata.name, ADMIN_PASSWORD_KEY),
            ],
            mounts=[k8s.core.v1.VolumeMountArgs(name="bootstrap", mount_path=BOOTSTRAP_DIR, read_only=True)],
            volumes=[kube.config_map_volume("bootstrap", bootstrap_config.metadata.name)],
            annotations={"checksum/script": kube.checksum(bootstrap_script)},
        ))
        self.register_outputs({"serviceName": self.service.metadata.name})
