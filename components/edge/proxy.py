"""The nginx reverse proxy in front of Portus and the registry: the platform's single TLS edge with
exposure=nodePort or loadBalancer."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.edge.nginx_conf import (
    HEALTH_PATH,
    LISTEN_PORT,
    PLATFORM_TLS_DIR,
    RUNTIME_DIR,
    STATUS_ADDRESS,
    STATUS_PATH,
    TLS_DIR,
    TRUST_FILE,
    NginxSettings,
    render_nginx_conf,
)
from components.edge.reloader import reloader_container

NAME = "proxy"
COMPONENT = "proxy"
TYPE = "portus:proxy:Proxy"
CONFIG_DIR = "/etc/nginx/conf"
CONFIG_FILE = f"{CONFIG_DIR}/nginx.conf"
# A high UID of no account on the node. nginx-unprivileged runs under any UID: with this nginx.conf every
# file it writes (pid, temp paths) is under the runtime emptyDir, and it logs to stdout and stderr.
RUN_AS = kube.RunAs(user=10101, group=10101)
EXPORTER_PORT = 9113
EXPORTER_PORT_NAME = "metrics"
EXPORTER_RESOURCES = kube.ResourceSpec("10m", "16Mi", "100m", "64Mi")
# The kubelet runs preStop before nginx gets its stop signal (the image's STOPSIGNAL is SIGQUIT, a
# graceful stop): the pause lets the Service drop the pod first. Layer transfers in flight then have
# the rest of the grace period to finish.
PRE_STOP_PAUSE_SECONDS = 5
GRACE_SECONDS = 120


@dataclass
class ProxyArgs:
    namespace: pulumi.Input[str]
    image: str
    exporter_image: str
    """nginx's Prometheus exporter (stub_status to Prometheus metrics), a sidecar."""
    replicas: int
    resources: kube.ResourceSpec
    settings: NginxSettings
    edge_tls_secret: pulumi.Input[str]
    """The edge certificate's Secret, served on the public names."""
    platform_tls_secret: pulumi.Input[str]
    """The proxy's certificate from the platform CA, served on its Service names."""
    trust_bundle: pulumi.Input[str]
    service_type: str
    """``NodePort`` (the node port is the public port) or ``LoadBalancer``."""
    public_port: int
    """Port of the Service: the same number inside the cluster as outside, so ``host:port`` works
    everywhere (for nodePort it is also the node port)."""


class Proxy(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    internal_service: k8s.core.v1.Service
    """A Service of type ClusterIP in front of the proxy, whose address Portus's pods resolve the public
    names to."""
    internal_service_name: str

    def __init__(self, name: str, args: ProxyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = kube.image_version(args.image)
        nginx_conf = render_nginx_conf(args.settings)
        served_files = [f"{directory}/{file}" for directory in (TLS_DIR, PLATFORM_TLS_DIR)
                        for file in ("tls.crt", "tls.key")]

        config = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata=kube.metadata(f"{NAME}-config", args.namespace, COMPONENT),
            data={"nginx.conf": nginx_conf},
            opts=child,
        )
        mounts = [
            k8s.core.v1.VolumeMountArgs(name="config", mount_path=CONFIG_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="tls", mount_path=TLS_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="platform-tls", mount_path=PLATFORM_TLS_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="trust", mount_path=TRUST_FILE.rsplit("/", 1)[0], read_only=True),
            k8s.core.v1.VolumeMountArgs(name="runtime", mount_path=RUNTIME_DIR),
        ]
        container = k8s.core.v1.ContainerArgs(
            name="nginx",
            image=args.image,
            command=["nginx", "-c", CONFIG_FILE, "-g", "daemon off;"],
            ports=[k8s.core.v1.ContainerPortArgs(name="https", container_port=LISTEN_PORT)],
            volume_mounts=mounts,
            readiness_probe=kube.https_probe(HEALTH_PATH, "https", period=5),
            liveness_probe=kube.https_probe(HEALTH_PATH, "https", period=20, failures=3),
            lifecycle=k8s.core.v1.LifecycleArgs(pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                exec_=k8s.core.v1.ExecActionArgs(command=["sleep", str(PRE_STOP_PAUSE_SECONDS)]),
            )),
            resources=kube.resources(args.resources),
            security_context=kube.restricted_container_security(),
        )
        deployment = kube.deployment(
            name, NAME, args.namespace, COMPONENT, version, args.replicas,
            kube.pod_spec(
                kube.service_account(f"{name}-sa", NAME, args.namespace, COMPONENT, child),
                RUN_AS,
                [
                    container,
                    exporter_container(args.exporter_image, args.settings.status_port),
                    reloader_container(args.image, CONFIG_FILE, served_files, mounts),
                ],
                [
                    kube.config_map_volume("config", config.metadata.name),
                    kube.secret_volume("tls", args.edge_tls_secret),
                    kube.secret_volume("platform-tls", args.platform_tls_secret),
                    kube.config_map_volume("trust", args.trust_bundle),
                    kube.empty_dir("runtime", "64Mi"),
                ],
                termination_grace_period_seconds=GRACE_SECONDS,
                # The reloader signals the nginx master of the container beside it.
                share_process_namespace=True,
                topology_spread_constraints=kube.spread_over_nodes(NAME),
            ),
            # No checksum of the certificates: a changed certificate reaches nginx by a reload, not a roll.
            {"checksum/config": kube.checksum(nginx_conf)},
            child,
        )
        if args.replicas > 1:
            kube.disruption_budget(f"{name}-pdb", NAME, args.namespace, COMPONENT,
                                   pulumi.ResourceOptions(parent=self, depends_on=[deployment]))

        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata=kube.metadata(NAME, args.namespace, COMPONENT),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=args.service_type,
                selector=kube.selector_labels(NAME),
                # The same number inside the cluster as outside (and, for nodePort, on the nodes), so
                # ``host:port`` means the same thing everywhere.
                ports=[kube.https_port(args.public_port, node_port=args.service_type == "NodePort")],
            ),
            opts=child,
        )
        self.service_name = service.metadata.name
        # Inside Portus's pods the public names resolve to its address. Not a LoadBalancer Service's:
        # the provider waits until a load balancer gives it an external address (await/service.go),
        # which never happens on kind or minikube without a tunnel, and nothing that reads the address
        # (the migration Job, every Portus pod) would be created until then.
        self.internal_service_name = NAME if args.service_type != "LoadBalancer" else f"{NAME}-internal"
        self.internal_service = service if args.service_type != "LoadBalancer" else kube.cluster_ip_service(
            f"{name}-internal-svc", self.internal_service_name, args.namespace, COMPONENT,
            [kube.https_port(args.public_port)], child, selector=kube.selector_labels(NAME),
        )
        self.register_outputs({"serviceName": self.service_name})


def component_urn(name: str, parent: pulumi.Resource) -> pulumi.Output[str]:
    """The URN of the proxy component named ``name`` under ``parent``, whether or not it is declared."""
    return pulumi.create_urn(name, TYPE, parent=parent)


def exporter_container(image: str, status_port: int) -> k8s.core.v1.ContainerArgs:
    """nginx-prometheus-exporter: reads stub_status over the pod's loopback and serves Prometheus metrics
    on EXPORTER_PORT, the proxy's only port besides the edge. (Flags with two dashes: the 1.x image parses
    them with kingpin, older builds with Go's flag package, which accepts both.)"""
    probe = k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path="/metrics", port=EXPORTER_PORT_NAME),
        period_seconds=20, timeout_seconds=5, failure_threshold=3,
    )
    return k8s.core.v1.ContainerArgs(
        name="exporter",
        image=image,
        args=[
            f"--nginx.scrape-uri=http://{STATUS_ADDRESS}:{status_port}{STATUS_PATH}",
            f"--web.listen-address=:{EXPORTER_PORT}",
        ],
        ports=[k8s.core.v1.ContainerPortArgs(name=EXPORTER_PORT_NAME, container_port=EXPORTER_PORT)],
        # Liveness only: an exporter in trouble must never take the proxy out of its Service.
        liveness_probe=probe,
        resources=kube.resources(EXPORTER_RESOURCES),
        security_context=kube.restricted_container_security(),
    )
