"""Docker Distribution registry: Deployment, Service, its image store and its generated config."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.pki import ServerCertificate
from components.registry.cache import BlobDescriptorCache
from components.registry.config_file import (
    CONFIG_DIR,
    CONFIG_FILE,
    DEBUG_PORT,
    HEALTH_PATH,
    LISTEN_PORT,
    TLS_DIR,
    TOKEN_CERT_FILE,
    RegistrySettings,
    render_registry_config,
)
from components.registry.storage import StorageBackend

NAME = "registry"
COMPONENT = "registry"
TRUST_DIR = "/etc/ssl/portus"
# A high UID of no account on the node. The registry binary needs no privileges and writes only to its
# storage (group-writable through fsGroup); the image's entrypoint only picks the `registry` subcommand.
RUN_AS = kube.RunAs(user=11000, group=11000)
# Earlier releases ran as 1000; a kept image store still holds its files.
PREVIOUS_RUN_AS = kube.RunAs(user=1000, group=1000)


@dataclass
class RegistryArgs:
    namespace: pulumi.Input[str]
    image: str
    resources: kube.ResourceSpec
    replicas: int
    """More than one needs shared storage (the configuration checks)."""
    storage: StorageBackend
    cache: BlobDescriptorCache
    settings: RegistrySettings
    certificate: ServerCertificate
    token_cert_pem: pulumi.Input[str]
    http_secret: pulumi.Output[str]
    trust_bundle: pulumi.Input[str]
    """Name of the ConfigMap holding the platform CA (``ca.crt``)."""
    kept: kube.KeptData
    """How objects holding image data (a claim) are kept and adopted."""


class Registry(pulumi.ComponentResource):
    service_name: pulumi.Output[str]

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:registry:Registry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = kube.image_version(args.image)
        config_yaml = render_registry_config(args.settings, args.storage.driver_config(),
                                             args.cache.config_sections())

        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=kube.metadata(f"{NAME}-config", args.namespace, COMPONENT),
            data={CONFIG_FILE: config_yaml, TOKEN_CERT_FILE: args.token_cert_pem},
            opts=child,
        )
        secret = kube.opaque_secret(
            f"{name}-secret", f"{NAME}-secret", args.namespace, COMPONENT, {"http-secret": args.http_secret}, child,
        )
        tls_secret = kube.tls_secret(f"{name}-tls", f"{NAME}-tls", args.namespace, COMPONENT, args.certificate, child)

        storage = args.storage.attach(NAME, args.namespace, args.kept, self)
        cache = args.cache.attach(NAME, args.namespace, self)

        account = kube.service_account(f"{name}-sa", NAME, args.namespace, COMPONENT, child)
        container = k8s.core.v1.ContainerArgs(
            name=NAME,
            image=args.image,
            args=["serve", f"{CONFIG_DIR}/{CONFIG_FILE}"],
            ports=[
                k8s.core.v1.ContainerPortArgs(name="https", container_port=LISTEN_PORT),
                k8s.core.v1.ContainerPortArgs(name="debug", container_port=DEBUG_PORT),
            ],
            env=[
                kube.secret_env("REGISTRY_HTTP_SECRET", secret.metadata.name, "http-secret"),
                # Go adds these roots to the system ones: notifications to Portus are verified.
                k8s.core.v1.EnvVarArgs(name="SSL_CERT_DIR", value=f"/etc/ssl/certs:{TRUST_DIR}"),
                *storage.env,
                *cache.env,
            ],
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
                k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_DIR, read_only=True),
                k8s.core.v1.VolumeMountArgs(name="trust", mount_path=TRUST_DIR, read_only=True),
                *storage.mounts,
            ],
            readiness_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=HEALTH_PATH, port="debug"),
                period_seconds=10, failure_threshold=3, timeout_seconds=5,
            ),
            liveness_probe=k8s.core.v1.ProbeArgs(
                http_get=k8s.core.v1.HTTPGetActionArgs(path=HEALTH_PATH, port="debug"),
                period_seconds=20, failure_threshold=6, timeout_seconds=5,
            ),
            resources=kube.resources(args.resources),
            security_context=kube.restricted_container_security(),
        )
        # Shared storage makes the pods stateless: they roll one by one and spread over nodes, and
        # an upload that lands on another pod resumes there (every pod has the same http.secret).
        deployment = kube.deployment(
            name, NAME, args.namespace, COMPONENT, version, args.replicas,
            kube.pod_spec(
                account,
                RUN_AS,
                [container],
                [
                    kube.config_map_volume("config", config.metadata.name),
                    kube.secret_volume("tls", tls_secret.metadata.name),
                    kube.config_map_volume("trust", args.trust_bundle),
                    *storage.volumes,
                ],
                # Every volume the storage mounts may hold an earlier release's files.
                init_containers=[
                    kube.ownership_handover(args.image, mount, PREVIOUS_RUN_AS, RUN_AS) for mount in storage.mounts
                ] or None,
                topology_spread_constraints=kube.spread_over_nodes(NAME) if args.storage.shared else None,
            ),
            {
                "checksum/config": kube.checksum(config_yaml, args.token_cert_pem),
                "checksum/secret": kube.checksum(
                    args.http_secret, args.certificate.cert_pem, args.certificate.private_key_pem,
                    *storage.secrets, *cache.secrets,
                ),
            },
            child,
            # Storage no two pods may share (one ReadWriteOnce volume): the old pod must let go of it
            # before the new one starts.
            recreate=not args.storage.shared,
        )
        if args.replicas > 1:
            kube.disruption_budget(f"{name}-pdb", NAME, args.namespace, COMPONENT,
                                   pulumi.ResourceOptions(parent=self, depends_on=[deployment]))
        service = kube.cluster_ip_service(
            f"{name}-svc", NAME, args.namespace, COMPONENT,
            [kube.https_port(LISTEN_PORT)],
            child,
        )
        self.service_name = service.metadata.name
        self.register_outputs({"serviceName": self.service_name})
