"""How clients outside the cluster reach the platform (``portus:exposure``), and how Portus reaches its
own public token realm inside it.

Each exposure is a small variant: the names its edge certificate carries, what it deploys, where
Portus's pods find the realm's host, and the network flows it needs.

- ``ingress``: the Ingresses route each path straight to Portus or the registry (one proxy on the path,
  the ingress controller); inside the cluster the realm's host resolves to Portus itself
  (components/edge/ingress.py says why).
- ``nodePort``, ``loadBalancer``: the platform's nginx proxy is the single edge; inside the cluster the
  public names resolve to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Protocol

import pulumi
import pulumi_kubernetes as k8s

from components import kube, monitoring, portus, registry
from components.edge import ingress, nginx_conf, proxy
from components.edge.ingress import Backend, PublicIngress, PublicIngressArgs
from components.edge.proxy import Proxy, ProxyArgs
from components.monitoring import Target
from components.network import ANYWHERE, Flow, Outside
from components.validation import quantity_value


class Exposure(StrEnum):
    INGRESS = "ingress"
    NODE_PORT = "nodePort"
    LOAD_BALANCER = "loadBalancer"


@dataclass(frozen=True)
class ProxyWorkload:
    """The proxy's own settings (``proxyImage``, ``proxyExporterImage``, ``proxyReplicas``, ``resources.proxy``)."""

    image: str
    exporter_image: str
    replicas: int
    resources: kube.ResourceSpec


@dataclass
class EdgeParts:
    """What the platform gives its edge, whichever it is."""

    namespace: pulumi.Input[str]
    public_hosts: list[str]
    realm_host: str
    """The host of the token realm (``host``)."""
    service_names: Callable[[str], list[str]]
    """Every in-cluster name of a Service of the platform's namespace."""
    tls_secret: pulumi.Input[str]
    """The edge certificate's Secret, served on the public names."""
    platform_tls_secret: pulumi.Input[str]
    """The proxy's certificate from the platform CA, for its Service names."""
    ca_secret: pulumi.Input[str]
    trust_bundle: pulumi.Input[str]
    portus: Backend
    registry: Backend
    proxy: ProxyWorkload
    log_level: str
    network_policies: pulumi.Resource
    """The policies that let the edge's traffic through."""


@dataclass
class Realm:
    """Inside Portus's pods, ``hosts`` resolve to the cluster IP of ``service``."""

    hosts: list[str]
    service: k8s.core.v1.Service
    service_name: str


class Edge(Protocol):
    @property
    def mode(self) -> Exposure: ...

    @property
    def port(self) -> int:
        """The public port: the same number inside the cluster as outside."""
        ...

    def portus_names(self, realm_host: str) -> list[str]:
        """Names Portus's own certificate carries besides its Service's."""
        ...

    def deploy(self, parts: EdgeParts, opts: pulumi.ResourceOptions) -> Realm: ...

    def clients(self) -> Outside:
        """Where clients reach the edge from."""
        ...

    def flows(self) -> list[Flow]:
        """The connections this edge needs, besides the platform's own."""
        ...

    def metric_targets(self) -> list[Target]:
        """What of this edge Prometheus scrapes in the platform's namespace."""
        ...


@dataclass(frozen=True)
class ProxyEdge:
    """nodePort or loadBalancer: the nginx proxy is the single edge, and inside the cluster the public
    names resolve to it (its ClusterIP Service, so Portus's pods never wait for a load balancer)."""

    mode: Exposure
    port: int

    def portus_names(self, realm_host: str) -> list[str]:
        return []

    def clients(self) -> Outside:
        return ANYWHERE

    def deploy(self, parts: EdgeParts, opts: pulumi.ResourceOptions) -> Realm:
        settings = nginx_conf.NginxSettings(
            server_names=parts.public_hosts,
            service_names=parts.service_names(proxy.NAME),
            portus=_upstream(parts.portus, keepalive=16),
            registry=_upstream(parts.registry, keepalive=32),
            # One per CPU of the proxy's limit (nginx_conf.py says why not `auto`).
            worker_processes=max(1, math.ceil(quantity_value(parts.proxy.resources.cpu_limit))),
            log_level=parts.log_level,
        )
        edge = Proxy("proxy", ProxyArgs(
            namespace=parts.namespace,
            image=parts.proxy.image,
            exporter_image=parts.proxy.exporter_image,
            replicas=parts.proxy.replicas,
            resources=parts.proxy.resources,
            settings=settings,
            edge_tls_secret=parts.tls_secret,
            platform_tls_secret=parts.platform_tls_secret,
            trust_bundle=parts.trust_bundle,
            service_type="NodePort" if self.mode is Exposure.NODE_PORT else "LoadBalancer",
            public_port=self.port,
        ), opts)
        return Realm(parts.public_hosts, edge.internal_service, edge.internal_service_name)

    def flows(self) -> list[Flow]:
        return [
            Flow(self.clients(), "proxy", nginx_conf.LISTEN_PORT),
            # Portus follows the public token realm, which resolves to the proxy inside its pods.
            Flow("portus", "proxy", nginx_conf.LISTEN_PORT),
            Flow("background", "proxy", nginx_conf.LISTEN_PORT),
            Flow("proxy", "portus", portus.PORT),
            Flow("proxy", "registry", registry.LISTEN_PORT),
        ]

    def metric_targets(self) -> list[Target]:
        return [monitoring.PROXY]


def _upstream(backend: Backend, keepalive: int) -> nginx_conf.Upstream:
    return nginx_conf.Upstream(backend.tls_name, backend.port, keepalive)


@dataclass(frozen=True)
class IngressEdge:
    """ingress: the Ingresses route to Portus and the registry directly; inside the cluster the realm's
    host resolves to Portus."""

    port: int
    ingress_class_name: str
    ingress_controller_namespace: str
    mode: ClassVar[Exposure] = Exposure.INGRESS

    def portus_names(self, realm_host: str) -> list[str]:
        return [realm_host]

    def clients(self) -> Outside:
        return Outside(namespace=self.ingress_controller_namespace)

    def deploy(self, parts: EdgeParts, opts: pulumi.ResourceOptions) -> Realm:
        edge = PublicIngress("ingress", PublicIngressArgs(
            namespace=parts.namespace,
            ingress_class_name=self.ingress_class_name,
            hosts=parts.public_hosts,
            tls_secret=parts.tls_secret,
            ca_secret=parts.ca_secret,
            portus=parts.portus,
            registry=parts.registry,
            realm_port=self.port,
            realm_pods=kube.selector_labels(portus.NAME),
            # An upgrade moves the controller's traffic from the proxy to Portus and the registry: the
            # policies must let it through before any Ingress sends it there.
            routes_after=[parts.network_policies],
        ), opts)
        return Realm([parts.realm_host], edge.realm_service, ingress.REALM_SERVICE)

    def flows(self) -> list[Flow]:
        controller = self.clients()
        return [
            # ingress-nginx connects to the pods behind a Service, not to its cluster IP.
            Flow(controller, "portus", portus.PORT),
            Flow(controller, "registry", registry.LISTEN_PORT),
            # Portus and its worker follow the public token realm, which resolves to Portus inside their pods.
            Flow("portus", "portus", portus.PORT),
            Flow("background", "portus", portus.PORT),
        ]

    def metric_targets(self) -> list[Target]:
        # The ingress controller runs elsewhere and exports its own metrics (its chart's ServiceMonitor).
        return []
