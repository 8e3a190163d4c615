"""The nginx reverse proxy in front of Portus and the registry: the platform's single TLS edge."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.edge.exposure import Exposure
from components.edge.nginx_conf import (
    HEALTH_PATH,
    LISTEN_PORT,
    RUNTIME_DIR,
    TLS_DIR,
    TRUST_FILE,
    NginxSettings,
    render_nginx_conf,
)
from components.pki import ServerCertificate

NAME = "proxy"
COMPONENT = "proxy"
# The nginx-unprivileged image's `nginx` account.
RUN_AS = kube.RunAs(user=101, group=101)


@dataclass
class ProxyArgs:
    namespace: pulumi.Input[str]
    image: str
    replicas: int
    resources: kube.ResourceSpec
    settings: NginxSettings
    certificate: ServerCertificate
    trust_bundle: pulumi.Input[str]
    exposure: Exposure
    public_port: int
    """Port of the Service: the same number inside the cluster as outside, so ``host:port`` works
    everywhere (for nodePort it is also the node port)."""


class Proxy(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    cluster_ip: pulumi.Output[str]
    tls_secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: ProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:proxy:Proxy", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = kube.image_version(args.image)
        nginx_conf = render_nginx_conf(args.settings)

        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=kube.metadata(f"{NAME}-config", args.namespace, COMPONENT),
            data={"nginx.conf": nginx_conf},
            opts=child,
        )
        tls_secret = kube.tls_secret(f"{name}-tls", f"{NAME}-tls", args.namespace, COMPONENT, args.certificate, child)
        self.tls_secret_name = tls_secret.metadata.name

        container = k8s.core.v1.ContainerArgs(
            name="nginx",
            image=args.image,
            command=["nginx", "-c", "/etc/nginx/conf/nginx.conf", "-g", "daemon off;"],
            ports=[k8s.core.v1.ContainerPortArgs(name="https", container_port=LISTEN_PORT)],
            volume_mounts=[
                k8s.core.v1.VolumeMountArgs(name="config", mount_path="/etc/nginx/conf", read_only=True),
                k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_DIR, read_only=True),
                k8s.core.v1.VolumeMountArgs(
                    name="trust", mount_path=TRUST_FILE.rsplit("/", 1)[0], read_only=True
                ),
                k8s.core.v1.VolumeMountArgs(name="runtime", mount_path=RUNTIME_DIR),
            ],
            readiness_probe=kube.https_probe(HEALTH_PATH, "https", period=5),
            liveness_probe=kube.https_probe(HEALTH_PATH, "https", period=20, failures=3),
            resources=kube.resources(args.resources),
            security_context=kube.restricted_container_security(),
        )
        deployment = kube.deployment(
            name, NAME, args.namespace, COMPONENT, version, args.replicas,
            kube.pod_spec(
                kube.service_account(f"{name}-sa", NAME, args.namespace, COMPONENT, child),
                RUN_AS,
                [container],
                [
                    kube.config_map_volume("config", config.metadata.name),
                    kube.secret_volume("tls", tls_secret.metadata.name),
                    kube.config_map_volume("trust", args.trust_bundle),
                    kube.empty_dir("runtime", "64Mi"),
                ],
                topology_spread_constraints=kube.spread_over_nodes(NAME),
            ),
            {
                "checksum/config": kube.checksum(nginx_conf),
                "checksum/secret": kube.checksum(args.certificate.cert_pem, args.certificate.private_key_pem),
            },
            child,
        )
        if args.replicas > 1:
            kube.disruption_budget(f"{name}-pdb", NAME, args.namespace, COMPONENT,
                                   pulumi.ResourceOptions(parent=self, depends_on=[deployment]))

        service_type = {
            Exposure.INGRESS: "ClusterIP", Exposure.NODE_PORT: "NodePort", Exposure.LOAD_BALANCER: "LoadBalancer",
        }[args.exposure]
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata=kube.metadata(NAME, args.namespace, COMPONENT),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=service_type,
                selector=kube.selector_labels(NAME),
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="https",
                        port=args.public_port,
                        target_port="https",
                        app_protocol="https",
                        node_port=args.public_port if args.exposure is Exposure.NODE_PORT else None,
                    )
                ],
            ),
            opts=child,
        )
        self.service_name = service.metadata.name
        self.cluster_ip = service.spec.apply(lambda spec: spec.cluster_ip or "")
        self.register_outputs({"serviceName": self.service_name, "clusterIP": self.cluster_ip})
