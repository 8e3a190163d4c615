"""The Ingress in front of the proxy (exposure=ingress): TLS with the edge certificate, settings that
let multi-gigabyte layers through ingress-nginx, and a verified HTTPS hop to the proxy."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube

NAME = "portus"
PREFIX = "nginx.ingress.kubernetes.io"


@dataclass
class PublicIngressArgs:
    namespace: pulumi.Input[str]
    ingress_class_name: str
    hosts: list[str]
    tls_secret: pulumi.Input[str]
    proxy_service: pulumi.Input[str]
    proxy_port: int
    proxy_tls_name: str
    """A name in the proxy's certificate that the controller checks on the upstream hop."""
    ca_secret: pulumi.Input[str]
    """Secret with the platform CA as ``ca.crt``."""


def ingress_annotations(namespace: str, ca_secret: str, proxy_tls_name: str) -> dict[str, str]:
    return {
        # Layers of any size, streamed: without these, pushes fail with 413 or stall on spooling.
        f"{PREFIX}/proxy-body-size": "0",
        f"{PREFIX}/proxy-request-buffering": "off",
        f"{PREFIX}/proxy-buffering": "off",
        f"{PREFIX}/proxy-http-version": "1.1",
        f"{PREFIX}/proxy-read-timeout": "900",
        f"{PREFIX}/proxy-send-timeout": "900",
        # The proxy speaks only HTTPS, and the controller verifies it against the platform CA.
        f"{PREFIX}/backend-protocol": "HTTPS",
        f"{PREFIX}/proxy-ssl-secret": f"{namespace}/{ca_secret}",
        f"{PREFIX}/proxy-ssl-verify": "on",
        f"{PREFIX}/proxy-ssl-verify-depth": "2",
        f"{PREFIX}/proxy-ssl-name": proxy_tls_name,
        f"{PREFIX}/proxy-ssl-server-name": "on",
        f"{PREFIX}/ssl-redirect": "true",
    }


class PublicIngress(pulumi.ComponentResource):
    def __init__(self, name: str, args: PublicIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:ingress:PublicIngress", name, None, opts)
        annotations = pulumi.Output.all(args.namespace, args.ca_secret).apply(
            lambda values: ingress_annotations(values[0], values[1], args.proxy_tls_name)
        )
        backend = k8s.networking.v1.IngressBackendArgs(
            service=k8s.networking.v1.IngressServiceBackendArgs(
                name=args.proxy_service,
                port=k8s.networking.v1.ServiceBackendPortArgs(number=args.proxy_port),
            )
        )
        ingress = k8s.networking.v1.Ingress(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=NAME, namespace=args.namespace, labels=kube.labels(NAME, "ingress"), annotations=annotations,
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=args.ingress_class_name,
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=args.hosts, secret_name=args.tls_secret)],
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=host,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(
                            paths=[k8s.networking.v1.HTTPIngressPathArgs(path="/", path_type="Prefix", backend=backend)]
                        ),
                    )
                    for host in args.hosts
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"ingress": ingress.metadata.name})
