"""NetworkPolicies: nothing reaches or leaves a pod in the namespace unless a flow allows it.

``FLOWS`` are the platform's own connections. What depends on configuration is added by the part that
owns it, as more ``Flow``s: the edge (components/edge/exposure.py: clients through the ingress
controller, or from anywhere, and where the token realm is inside the cluster), and connections to
services outside the namespace (an object store, an external database, a directory).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import database, kube, portus, registry
from components.database import backup
from components.edge import proxy
from components.portus import tasks
from components.validation import ip_address


def _task_pods(component: str) -> dict[str, str]:
    """A Job's pods: their names carry a hash of the Job's inputs, their component label does not."""
    return {"app.kubernetes.io/instance": kube.PART_OF, "app.kubernetes.io/component": component}


# The platform's workloads by pod selector: the ends of every flow inside the namespace.
PEERS: dict[str, dict[str, str]] = {
    "proxy": kube.selector_labels(proxy.NAME),
    "portus": kube.selector_labels(portus.NAME),
    "background": kube.selector_labels(portus.BACKGROUND_NAME),
    "registry": kube.selector_labels(registry.NAME),
    "database": kube.selector_labels(database.NAME),
    "migrate": _task_pods(tasks.MIGRATE_COMPONENT),
    "bootstrap": _task_pods(tasks.BOOTSTRAP_COMPONENT),
    # The backup CronJob's pods and the restore pods started from it.
    "backup": kube.selector_labels(backup.NAME),
    # cert-manager's HTTP-01 solver pods, started in the namespace of a Certificate (tls.source=certManager)
    # with this label (pkg/issuer/acme/http/pod.go @ v1.21.0).
    "acme-solver": {"acme.cert-manager.io/http01-solver": "true"},
}


@dataclass(frozen=True)
class Outside:
    """A peer outside the namespace: pods of another namespace, address ranges, or (neither) anywhere."""

    namespace: str | None = None
    cidrs: tuple[str, ...] = ()

    def peers(self) -> list[k8s.networking.v1.NetworkPolicyPeerArgs] | None:
        """The policy peers; None (the rule names no peer) means any address."""
        if self.namespace:
            return [k8s.networking.v1.NetworkPolicyPeerArgs(
                namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                    match_labels={"kubernetes.io/metadata.name": self.namespace}
                )
            )]
        if self.cidrs:
            return [k8s.networking.v1.NetworkPolicyPeerArgs(ip_block=k8s.networking.v1.IPBlockArgs(cidr=cidr))
                    for cidr in self.cidrs]
        return None


ANYWHERE = Outside()


@dataclass(frozen=True)
class Flow:
    """``source`` may open TCP connections to ``target`` on ``port``; a workload name is a key of PEERS."""

    source: str | Outside
    target: str | Outside
    port: int


FLOWS: tuple[Flow, ...] = (
    Flow("registry", "portus", portus.PORT),  # notifications
    Flow("portus", "registry", registry.LISTEN_PORT),
    Flow("background", "registry", registry.LISTEN_PORT),
)
# Every workload that connects to Portus's database; where it is, and so the flows, depends on the
# configuration (components/database/endpoint.py).
DATABASE_CLIENTS = ("portus", "background", "migrate", "bootstrap")


# Only with backups on: their pods dump (and restore) the database.
BACKUP_FLOW = Flow("backup", "database", database.PORT)


def edge_source(ingress_controller_namespace: str | None) -> Outside:
    """Where clients reach the edge from: the ingress controller, or (nodePort, loadBalancer) anywhere."""
    return Outside(namespace=ingress_controller_namespace) if ingress_controller_namespace else ANYWHERE


def token_realm_flows(host: str, port: int) -> list[Flow]:
    """Portus and its worker follow the public token realm on ``host``. A DNS name resolves inside their pods
    to the edge's realm Service, which the edge's flows allow; an IP address (a node's, or the load
    balancer's: exposure nodePort or loadBalancer) is reached the way clients reach it, so they may also open
    connections to that address on the public port (CNIs that check egress before the Service's address
    translation see that address, not the proxy pod)."""
    if not ip_address(host):
        return []
    realm = Outside(cidrs=(f"{host}/32",))
    return [Flow("portus", realm, port), Flow("background", realm, port)]


def to_remote(source: str, remote: kube.Remote) -> Flow:
    """``source`` connects to a service outside the namespace (in ``remote.cidrs``, or anywhere)."""
    return Flow(source, Outside(cidrs=remote.cidrs), remote.port)


@dataclass
class NetworkPoliciesArgs:
    namespace: pulumi.Input[str]
    flows: Sequence[Flow]
    """Every allowed connection: FLOWS plus what the configuration adds."""


def _peers(end: str | Outside) -> list[k8s.networking.v1.NetworkPolicyPeerArgs] | None:
    if isinstance(end, Outside):
        return end.peers()
    selector = k8s.meta.v1.LabelSelectorArgs(match_labels=PEERS[end])
    return [k8s.networking.v1.NetworkPolicyPeerArgs(pod_selector=selector)]


def _port(port: int) -> list[k8s.networking.v1.NetworkPolicyPortArgs]:
    return [k8s.networking.v1.NetworkPolicyPortArgs(protocol="TCP", port=port)]


class NetworkPolicies(pulumi.ComponentResource):
    def __init__(self, name: str, args: NetworkPoliciesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:network:NetworkPolicies", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        def policy(resource_name: str, policy_name: str, spec: k8s.networking.v1.NetworkPolicySpecArgs) -> None:
            k8s.networking.v1.NetworkPolicy(
                resource_name, metadata=kube.metadata(policy_name, args.namespace, "network"), spec=spec, opts=child
            )

        everything = k8s.meta.v1.LabelSelectorArgs()
        policy(f"{name}-default-deny", "default-deny", k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=everything, policy_types=["Ingress", "Egress"],
        ))
        policy(f"{name}-dns", "allow-dns", k8s.networking.v1.NetworkPolicySpecArgs(
            pod_selector=everything,
            policy_types=["Egress"],
            egress=[k8s.networking.v1.NetworkPolicyEgressRuleArgs(
                to=Outside(namespace="kube-system").peers(),
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=53)
                       for protocol in ("UDP", "TCP")],
            )],
        ))
        for workload, selector in PEERS.items():
            if not any(workload in (flow.source, flow.target) for flow in args.flows):
                continue  # a workload this stack does not run (the proxy with exposure=ingress, say)
            ingress = [
                k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=_peers(flow.source), ports=_port(flow.port))
                for flow in args.flows if flow.target == workload
            ]
            egress = [
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=_peers(flow.target), ports=_port(flow.port))
                for flow in args.flows if flow.source == workload
            ]
            policy(f"{name}-{workload}", f"allow-{workload}", k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                policy_types=["Ingress", "Egress"],
                ingress=ingress,
                egress=egress,
            ))
        self.register_outputs({})
