"""Portus: the web UI and token service, the background worker, the database migration Job that runs
before they roll, and the bootstrap Job that finishes the setup without the web UI.

The image's own entrypoint (``/init``) is bypassed on purpose, for four reasons found in its source:
it runs ``update-ca-certificates`` as root (so it cannot run non-root); it treats a database with pending
migrations as empty and runs ``rake db:setup``, which drops every table on upgrade; at log level
``debug`` it prints the environment, secrets included; and Portus under it never sees SIGTERM. The
containers run the entry of ``runtime.py`` instead (what ``portusctl exec`` runs, as PID 1, with the
secrets read from files as ``/init`` reads them), and the migration Job runs the idempotent
``rake portus:db:configure`` (create, migrate, or load schema and seed) before any Portus pod rolls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.database import DatabaseConnection, generated_password
from components.pki import ServerCertificate
from components.portus import tasks
from components.portus.runtime import (
    APP_DIR,
    CA_BUNDLE_DIR,
    CA_BUNDLE_FILE,
    EXTRA_TRUST_VOLUME,
    TOKEN_KEY_FILE,
    PortusRuntime,
    PortusSecret,
    database_password,
    database_settings,
    trust_bundle_init,
)
from components.portus.tasks import BOOTSTRAP_SCRIPT, RegistryRecord
from components.validation import ip_address

if TYPE_CHECKING:
    # Only for the annotation: the settings module imports the network flows, which import this package.
    from components.portus.settings import PortusSettings, SettingsAttachment

NAME = "portus"
BACKGROUND_NAME = "portus-background"
COMPONENT = "portus"
PORT = 3000
PING_PATH = "/api/v1/_ping"
TLS_DIR = "/etc/portus/tls"
SECRET_KEY_BASE_KEY = "secret-key-base"
# As long as Rails' usual 128 hex characters, from letters and digits (about 760 bits).
SECRET_KEY_BASE_LENGTH = 128
PORTUS_PASSWORD_KEY = "portus-password"
ADMIN_PASSWORD_KEY = "admin-password"
# Portus pulls a large image and boots Rails; on a cold node that outlasts Pulumi's 10-minute default.
SLOW_START = pulumi.CustomTimeouts(create="20m", update="20m")
# Rollouts. The kubelet runs preStop before it sends SIGTERM: during the pause the pod is already out of
# the Service's endpoints, so the edge (the proxy, or the ingress controller) stops sending it new
# requests before Puma stops accepting.
PRE_STOP_PAUSE_SECONDS = 5
# Puma then finishes its requests in flight (it sets no time limit of its own); the edge gives up on a
# Portus answer after 120 s, so nothing worth waiting for runs longer.
LONGEST_REQUEST_SECONDS = 120
WEB_GRACE_SECONDS = PRE_STOP_PAUSE_SECONDS + LONGEST_REQUEST_SECONDS + 5
# The background worker has no requests: Ruby ends at SIGTERM, rolling back a sync pass in progress.
BACKGROUND_GRACE_SECONDS = 30

# `portus:catalogSync` -> Portus's background.sync settings (config/config.yml, read through cconfig
# as PORTUS_BACKGROUND_SYNC_*; lib/portus/background/sync.rb accepts these strategies). `initial`
# switches itself off once any repository exists; `update` adds what push events missed (OCI manifests,
# which lib/portus/registry_notification.rb drops) every 20 s and never deletes.
CATALOG_SYNC: dict[str, dict[str, str]] = {
    "update": {"PORTUS_BACKGROUND_SYNC_ENABLED": "true", "PORTUS_BACKGROUND_SYNC_STRATEGY": "update"},
    "update-delete": {"PORTUS_BACKGROUND_SYNC_ENABLED": "true", "PORTUS_BACKGROUND_SYNC_STRATEGY": "update-delete"},
    "initial": {"PORTUS_BACKGROUND_SYNC_ENABLED": "true", "PORTUS_BACKGROUND_SYNC_STRATEGY": "initial"},
    "disabled": {"PORTUS_BACKGROUND_SYNC_ENABLED": "false"},
}


@dataclass
class PortusArgs:
    namespace: pulumi.Input[str]
    image: str
    replicas: int
    web_resources: kube.ResourceSpec
    background_resources: kube.ResourceSpec
    fqdn: str
    """``PORTUS_MACHINE_FQDN_VALUE``: the public name and the ``iss`` of the tokens Portus signs."""
    realm_hosts: list[str]
    realm_address: pulumi.Input[str] | None
    """The registry sends Portus's own clients to the public token realm: inside Portus's pods its host
    (``realm_hosts``) resolves to this address, so the realm works there too (a public IP address is
    reached as clients reach it). None leaves their resolution to the cluster's DNS."""
    log_level: str
    signup_enabled: bool
    catalog_sync: str
    """A key of CATALOG_SYNC."""
    database: DatabaseConnection
    certificate: ServerCertificate
    token_key_pem: pulumi.Input[str]
    trust_bundle: pulumi.Input[str]
    edge_trust: pulumi.Input[str]
    """Name of the ConfigMap with the chain the edge's clients must trust (``ca.crt``)."""
    edge_trust_pem: pulumi.Input[str]
    """That chain's text, so that a change rolls the pods that build their bundle from it."""
    registry: RegistryRecord
    admin_username: str
    admin_email: str
    settings: PortusSettings
    """LDAP, sign-in providers, e-mail, tag retention and permissions: env, credentials and extra trust."""
    wait_for: list[pulumi.Resource] = field(default_factory=list)
    """What must be ready before the database migration, and so before any Portus pod, starts. The
    Service is not held back: the edge resolves its name when it starts."""


class Portus(pulumi.ComponentResource):
    service: k8s.core.v1.Service
    admin_password: pulumi.Output[str]

    def __init__(self, name: str, args: PortusArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:portus:Portus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = kube.image_version(args.image)

        # Rails signs and encrypts session cookies and Devise's reset-password tokens with it. Not a
        # RandomId: its resource ID is the base64url of the same bytes (terraform-provider-random
        # resource_id.go), and IDs are stored and shown in plain text; a RandomPassword's ID is "none".
        # Stacks made with the RandomId get a new value on upgrade (the old one is in every checkpoint
        # written so far, and importing it would store it again as the import ID): web users sign in again.
        secret_key_base = generated_password(f"{name}-secret-key-base", SECRET_KEY_BASE_LENGTH, self)
        portus_password = generated_password(f"{name}-portus-password", 32, self)
        admin_password = generated_password(f"{name}-admin-password", 24, self)
        self.admin_password = pulumi.Output.secret(admin_password.result)
        secrets = kube.opaque_secret(
            f"{name}-secrets", f"{NAME}-secrets", args.namespace, COMPONENT,
            {
                SECRET_KEY_BASE_KEY: secret_key_base.result,
                PORTUS_PASSWORD_KEY: portus_password.result,
                ADMIN_PASSWORD_KEY: admin_password.result,
                "token.key": args.token_key_pem,
            },
            child,
        )
        tls_secret = kube.tls_secret(f"{name}-tls", f"{NAME}-tls", args.namespace, COMPONENT, args.certificate, child)
        self.service = kube.cluster_ip_service(
            f"{name}-svc", NAME, args.namespace, COMPONENT,
            [kube.https_port(PORT)],
            child,
        )
        settings = args.settings.attach(name, NAME, args.namespace, COMPONENT, self)
        runtime = self._runtime(name, args, secrets.metadata.name, settings)

        def task(job: tasks.TaskJob) -> k8s.batch.v1.Job:
            return tasks.task_job(name, NAME, args.namespace, runtime, args.background_resources, job, self)

        migration = task(tasks.migration([secrets, *args.wait_for], args.image))
        pod_annotations = {
            "checksum/secret": kube.checksum(
                secret_key_base.result, portus_password.result, args.token_key_pem,
                args.certificate.cert_pem, args.certificate.private_key_pem,
            ),
            "checksum/trust": kube.checksum(args.edge_trust_pem),
        }
        if settings.secrets or settings.trust_config_map:
            pod_annotations["checksum/settings"] = settings.checksum
        web = kube.deployment(
            name, NAME, args.namespace, COMPONENT, version, args.replicas,
            runtime.pod_spec(
                [self._web_container(runtime, args)],
                volumes=[kube.secret_volume("tls", tls_secret.metadata.name)],
                termination_grace_period_seconds=WEB_GRACE_SECONDS,
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
            runtime.pod_spec(
                [runtime.container(
                    "background", [["rails", "runner", f"{APP_DIR}/bin/background.rb"]],
                    args.background_resources, kube.env(CATALOG_SYNC[args.catalog_sync]),
                )],
                termination_grace_period_seconds=BACKGROUND_GRACE_SECONDS,
            ),
            pod_annotations,
            pulumi.ResourceOptions(parent=self, depends_on=[migration]),
            # Two workers would process the same registry events twice.
            recreate=True,
        )

        bootstrap_script = BOOTSTRAP_SCRIPT.read_text()
        bootstrap_config = k8s.core.v1.ConfigMap(
            f"{name}-bootstrap",
            metadata=kube.metadata(f"{NAME}-bootstrap", args.namespace, COMPONENT),
            data={BOOTSTRAP_SCRIPT.name: bootstrap_script},
            opts=child,
        )
        task(tasks.bootstrap(
            args.registry, args.admin_username, args.admin_email,
            PortusSecret("BOOTSTRAP_ADMIN_PASSWORD", secrets.metadata.name, ADMIN_PASSWORD_KEY),
            bootstrap_script, bootstrap_config.metadata.name, [migration],
        ))
        self.register_outputs({"serviceName": self.service.metadata.name})

    def _runtime(self, name: str, args: PortusArgs, secrets: pulumi.Input[str],
                 settings: SettingsAttachment) -> PortusRuntime:
        env = [
            *kube.env({
                # What /init exports before it starts anything.
                "RAILS_ENV": "production",
                "RACK_ENV": "production",
                "CCONFIG_PREFIX": "PORTUS",
                "HOME": "/tmp",
                "PORTUS_MACHINE_FQDN_VALUE": args.fqdn,
                **database_settings(args.database),
                "PORTUS_KEY_PATH": TOKEN_KEY_FILE,
                "PORTUS_LOG_LEVEL": args.log_level,
                "PORTUS_SIGNUP_ENABLED": str(args.signup_enabled).lower(),
                # The bootstrap Job creates the administrator: a stranger's first sign-up must not.
                "PORTUS_FIRST_USER_ADMIN_ENABLED": "false",
                "PORTUS_ANONYMOUS_BROWSING_ENABLED": "false",
                "PORTUS_DELETE_ENABLED": "true",
                "PORTUS_CHECK_SSL_USAGE_ENABLED": "true",
                # Ruby's OpenSSL reads this bundle: the system roots, the platform CA and the settings' CAs.
                "SSL_CERT_FILE": CA_BUNDLE_FILE,
            }),
            *settings.env,
        ]
        # Public DNS names resolve to the proxy inside the pod; an IP address is used as it is.
        aliased = [host for host in args.realm_hosts if not ip_address(host)]
        extra_trust = (
            [kube.config_map_volume(EXTRA_TRUST_VOLUME, settings.trust_config_map)] if settings.trust_config_map
            else []
        )
        return PortusRuntime(
            image=args.image,
            account=kube.service_account(f"{name}-sa", NAME, args.namespace, COMPONENT,
                                         pulumi.ResourceOptions(parent=self)),
            env=env,
            mounts=[
                k8s.core.v1.VolumeMountArgs(name="secrets", mount_path=TOKEN_KEY_FILE, sub_path="token.key",
                                            read_only=True),
                k8s.core.v1.VolumeMountArgs(name="ca-bundle", mount_path=CA_BUNDLE_DIR, read_only=True),
                k8s.core.v1.VolumeMountArgs(name="app-tmp", mount_path=f"{APP_DIR}/tmp"),
                k8s.core.v1.VolumeMountArgs(name="app-log", mount_path=f"{APP_DIR}/log"),
                k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp"),
            ],
            volumes=[
                kube.secret_volume(
                    "secrets", secrets, [k8s.core.v1.KeyToPathArgs(key="token.key", path="token.key")]
                ),
                kube.config_map_volume("trust", args.trust_bundle),
                kube.config_map_volume("edge-trust", args.edge_trust),
                *extra_trust,
                kube.empty_dir("ca-bundle", "8Mi"),
                kube.empty_dir("app-tmp", "512Mi"),
                kube.empty_dir("app-log", "256Mi"),
                kube.empty_dir("tmp", "256Mi"),
            ],
            init_containers=[trust_bundle_init(args.image, extra_trust=bool(extra_trust))],
            secrets=[
                database_password(args.database),
                PortusSecret("PORTUS_SECRET_KEY_BASE", secrets, SECRET_KEY_BASE_KEY),
                PortusSecret("PORTUS_PASSWORD", secrets, PORTUS_PASSWORD_KEY),
                *settings.secrets,
            ],
            host_aliases=[] if args.realm_address is None or not aliased else [
                k8s.core.v1.HostAliasArgs(ip=args.realm_address, hostnames=aliased),
            ],
        )

    @staticmethod
    def _web_container(runtime: PortusRuntime, args: PortusArgs) -> k8s.core.v1.ContainerArgs:
        return runtime.container(
            NAME,
            # What /init runs (`pumactl -F config/puma.rb start` starts this in-process), without its
            # database handling, as PID 1.
            [["puma", "-C", f"{APP_DIR}/config/puma.rb"]],
            args.web_resources,
            kube.env({
                "PORTUS_PUMA_HOST": f"0.0.0.0:{PORT}",
                "PORTUS_PUMA_TLS_KEY": f"{TLS_DIR}/tls.key",
                "PORTUS_PUMA_TLS_CERT": f"{TLS_DIR}/tls.crt",
                "PORTUS_PUMA_WORKERS": "2",
                "PORTUS_PUMA_MAX_THREADS": "4",
                # No shared volume with the edge: Puma serves the precompiled assets itself.
                "RAILS_SERVE_STATIC_FILES": "true",
            }),
            [k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_DIR, read_only=True)],
            ports=[k8s.core.v1.ContainerPortArgs(name="https", container_port=PORT)],
            # Puma boots Rails and checks assets: minutes on a cold node.
            startup_probe=kube.https_probe(PING_PATH, "https", period=10, failures=60),
            readiness_probe=kube.https_probe(PING_PATH, "https", period=10),
            liveness_probe=kube.https_probe(PING_PATH, "https", period=20, failures=6),
            lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(command=["sleep", str(PRE_STOP_PAUSE_SECONDS)]),
            )),
        )
