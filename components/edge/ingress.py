"""The Ingresses of exposure=ingress: ingress-nginx terminates TLS with the edge certificate and sends
each path straight to the Service that answers it, over HTTPS verified against the platform CA. Layers
cross one proxy on their way to the registry, not two.

ingress-nginx merges the paths of every Ingress of a host into one server, and each location keeps the
annotations of the Ingress that declared it (``getBackendServers`` in
internal/ingress/controller/controller.go, controller-v1.12.8). So each set of paths that needs its own
settings gets an Ingress: streaming for the registry, a web app's for Portus's UI, a short timeout for
its token and webhook endpoints.

Inside the cluster nothing goes through the Ingress. The registry sends Portus's own clients (the web
UI's registry calls, the background worker) to the public token realm, ``https://<host>[:port]/v2/token``;
in their pods ``host`` resolves to the Service ``portus-realm``, which answers on the public port with
Portus itself. Portus's certificate names ``host`` for that (``portus_names``): every server's
certificate names what its clients call it, and the edge certificate stays the one the Ingress serves.
The alternative, keeping the proxy Deployment only to answer Portus's token requests, would run two
pods and a second copy of the edge certificate for requests Portus can answer itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube

NAME = "portus"
TOKEN_INGRESS = "portus-token"
REGISTRY_INGRESS = "portus-registry"
REALM_SERVICE = "portus-realm"
COMPONENT = "ingress"
PREFIX = "nginx.ingress.kubernetes.io"
TOKEN_PATH = "/v2/token"
WEBHOOK_PATH = "/v2/webhooks/events"

# Streaming through ingress-nginx, as measured with `python -m tests.rehearsal.bench --exposure ingress`
# (README, Performance). With buffering off both ways nginx relays each read as it comes, so the buffer
# sizes are the size of every read and write: the controller's 4k (proxy-buffer-size) and 8k
# (client-body-buffer-size, from its ConfigMap) cost a third more nginx CPU per MiB pushed; 64k to 1m
# measured within noise of each other, and 256k is the proxy's size too (about 0.5 MiB per layer in
# flight). 4 buffers keep nginx's busy-buffers check satisfied (2 x 256k < 3 x 256k); they are never
# filled while buffering is off. Should an HTTP/2 upload arrive whole before nginx reads it, nginx buffers
# it after all (ngx_http_v2_read_request_body); a client body buffer above HTTP/2's 64k preread keeps it
# in memory.
STREAM_BUFFER = "256k"
STREAM_BUFFERS = "4"
# A layer of many gigabytes on a slow link: the upstream may stay silent for minutes.
STREAM_TIMEOUT_SECONDS = "900"
# The same bounds as the proxy's (components/edge/nginx_conf.py): the web UI may take a while, but a
# Portus that hangs must not hang `docker login`.
PORTUS_TIMEOUT_SECONDS = "120"
TOKEN_TIMEOUT_SECONDS = "30"


@dataclass(frozen=True)
class Backend:
    """A Service behind the edge, reached over HTTPS."""

    service: str
    port: int
    tls_name: str
    """The in-cluster name in its certificate, which the edge checks."""


@dataclass(frozen=True)
class Route:
    """One Ingress: the paths one backend answers and the settings it needs."""

    resource_name: str
    """Pulumi's name for it: part of its URN, which must never change."""
    name: str
    backend: Backend
    paths: tuple[tuple[str, str], ...]
    """(path, pathType) pairs."""
    settings: Mapping[str, str]
    """Annotations (without the prefix) of this backend alone."""


def backend_annotations(namespace: str, ca_secret: str, backend: Backend) -> dict[str, str]:
    """Verified HTTPS to ``backend``, as every route has it.

    With ``proxy-ssl-secret`` set, ingress-nginx allows only TLS 1.2 to backends unless told otherwise,
    and without ``proxy-ssl-name`` it would check the name ``upstream_balancer`` (its one upstream block)
    in the backend's certificate (annotations/proxyssl/main.go, nginx.tmpl, controller-v1.12.8)."""
    return {
        "backend-protocol": "HTTPS",
        "proxy-ssl-secret": f"{namespace}/{ca_secret}",
        "proxy-ssl-verify": "on",
        "proxy-ssl-verify-depth": "2",
        "proxy-ssl-name": backend.tls_name,
        "proxy-ssl-server-name": "on",
        "proxy-ssl-protocols": "TLSv1.2 TLSv1.3",
        # Plain HTTP to the public names is redirected to HTTPS (also the controller's default).
        "ssl-redirect": "true",
        # The controller prefers its own cipher order (ssl_prefer_server_ciphers on), and OpenSSL applies
        # that to TLS 1.3 too: every client gets AES-256-GCM, where clients with AES instructions ask for
        # AES-128-GCM, as safe and cheaper per byte (a fifth less nginx CPU per MiB pulled, measured). Every
        # suite the controller offers is an AEAD with forward secrecy, so the client may choose, as Mozilla's
        # intermediate profile has it. A server-level setting: the first Ingress of a host that sets it
        # wins (controller.go ``createServers``), so all three set the same.
        "ssl-prefer-server-ciphers": "false",
    }


def routes(portus: Backend, registry: Backend) -> list[Route]:
    # No body size limit of the edge's own for Portus, as with the proxy: Puma applies Portus's.
    return [
        Route(
            "ingress", NAME, portus, (("/", "Prefix"),),
            {
                "proxy-body-size": "0",
                "proxy-read-timeout": PORTUS_TIMEOUT_SECONDS,
                "proxy-send-timeout": PORTUS_TIMEOUT_SECONDS,
            },
        ),
        Route(
            "ingress-token", TOKEN_INGRESS, portus, ((TOKEN_PATH, "Exact"), (WEBHOOK_PATH, "Exact")),
            {
                "proxy-body-size": "0",
                "proxy-read-timeout": TOKEN_TIMEOUT_SECONDS,
                "proxy-send-timeout": TOKEN_TIMEOUT_SECONDS,
            },
        ),
        Route(
            "ingress-registry", REGISTRY_INGRESS, registry,
            # Every other /v2/ path; ingress-nginx prefers exact matches, so the token and webhook
            # paths above stay Portus's.
            (("/v2/", "Prefix"),),
            {
                # Layers of any size, streamed both ways: no 413, nothing spooled to disk.
                "proxy-body-size": "0",
                "proxy-request-buffering": "off",
                "proxy-buffering": "off",
                "proxy-http-version": "1.1",
                "proxy-buffer-size": STREAM_BUFFER,
                "proxy-buffers-number": STREAM_BUFFERS,
                "client-body-buffer-size": STREAM_BUFFER,
                "proxy-read-timeout": STREAM_TIMEOUT_SECONDS,
                "proxy-send-timeout": STREAM_TIMEOUT_SECONDS,
            },
        ),
    ]


def route_annotations(namespace: str, ca_secret: str, route: Route) -> dict[str, str]:
    return {
        f"{PREFIX}/{key}": value
        for key, value in {**backend_annotations(namespace, ca_secret, route.backend), **route.settings}.items()
    }


@dataclass
class PublicIngressArgs:
    namespace: pulumi.Input[str]
    ingress_class_name: str
    hosts: list[str]
    tls_secret: pulumi.Input[str]
    """The edge certificate's Secret."""
    ca_secret: pulumi.Input[str]
    """Secret with the platform CA as ``ca.crt``."""
    portus: Backend
    registry: Backend
    realm_port: int
    """The public port: ``host:port`` means Portus inside the cluster as it does outside."""
    realm_pods: dict[str, str]
    """Selector of Portus's web pods."""
    routes_after: list[pulumi.Resource]
    """What must be in place before the Ingresses send traffic anywhere."""


class PublicIngress(pulumi.ComponentResource):
    """The Ingresses and the realm's Service.

    pulumi-kubernetes awaits each Ingress until the controller publishes an address in
    ``status.loadBalancer.ingress``; that its backends' Endpoints exist is only waited for until they
    settle, then a warning (provider/pkg/await/ingress.go @ v4.32.0). So nothing here waits for Portus or
    the registry to be ready, and a controller that publishes no status fails ``pulumi up``."""

    realm_service: k8s.core.v1.Service
    """The Service Portus's pods resolve ``host`` to."""

    def __init__(self, name: str, args: PublicIngressArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:ingress:PublicIngress", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for route in routes(args.portus, args.registry):
            self._ingress(route, args, pulumi.ResourceOptions(parent=self, depends_on=args.routes_after))
        self.realm_service = realm_service(args.namespace, args.realm_pods, args.realm_port, child)
        self.register_outputs({"realmService": self.realm_service.metadata.name})

    @staticmethod
    def _ingress(route: Route, args: PublicIngressArgs, opts: pulumi.ResourceOptions) -> k8s.networking.v1.Ingress:
        backend = k8s.networking.v1.IngressBackendArgs(
            service=k8s.networking.v1.IngressServiceBackendArgs(
                name=route.backend.service,
                port=k8s.networking.v1.ServiceBackendPortArgs(number=route.backend.port),
            )
        )
        return k8s.networking.v1.Ingress(
            route.resource_name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=route.name,
                namespace=args.namespace,
                labels=kube.labels(route.name, COMPONENT),
                annotations=pulumi.Output.all(args.namespace, args.ca_secret).apply(
                    lambda values: route_annotations(values[0], values[1], route)
                ),
            ),
            spec=k8s.networking.v1.IngressSpecArgs(
                ingress_class_name=args.ingress_class_name,
                tls=[k8s.networking.v1.IngressTLSArgs(hosts=args.hosts, secret_name=args.tls_secret)],
                rules=[
                    k8s.networking.v1.IngressRuleArgs(
                        host=host,
                        http=k8s.networking.v1.HTTPIngressRuleValueArgs(paths=_paths(route.paths, backend)),
                    )
                    for host in args.hosts
                ],
            ),
            opts=opts,
        )


def _paths(paths: Sequence[tuple[str, str]], backend: k8s.networking.v1.IngressBackendArgs
           ) -> list[k8s.networking.v1.HTTPIngressPathArgs]:
    return [k8s.networking.v1.HTTPIngressPathArgs(path=path, path_type=kind, backend=backend) for path, kind in paths]


def realm_service(namespace: pulumi.Input[str], pods: dict[str, str], port: int,
                  opts: pulumi.ResourceOptions) -> k8s.core.v1.Service:
    """Portus on the public port, for its own pods: ``hostAliases`` there resolve ``host`` to this address.

    Not awaited (``pulumi.com/skipAwait``): the pods that use its address are the very pods it selects,
    and the provider's Service await holds while any selected pod is not ready (await/service.go
    ``endpointsPending``, v4.17.0 on), so an update of this Service during a Portus rollout or crash
    would wait ten minutes and fail, and hold back the Portus update that fixes the crash. What Portus's
    pods need is the cluster IP, which the API server assigns when it creates the Service."""
    return kube.cluster_ip_service(
        "portus-realm-svc", REALM_SERVICE, namespace, COMPONENT,
        [kube.https_port(port)],
        opts, selector=pods, annotations=kube.SKIP_AWAIT,
    )
