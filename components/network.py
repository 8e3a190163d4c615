"""NetworkPolicies: nothing reaches or leaves a pod in the namespace unless a flow below allows it."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import database, kube, portus, registry
from components.edge import nginx_conf, proxy
from components.portus import tasks


def _task_pods(component: str) -> dict[str, str]:
    """A Job's pods: their names carry a hash of the Job's inputs, their component label does not."""
    return {"app.kubernetes.io/instance": kube.PART_OF, "app.kubernetes.io/component": component}


# Who may open connections to whom, by pod selector; "edge" is whoever clients come through.
PEERS: dict[str, dict[str, str]] = {
    "proxy": kube.selector_labels(proxy.NAME),
    "portus": kube.selector_labels(portus.NAME),
    "background": kube.selector_labels(portus.BACKGROUND_NAME),
    "registry": kube.selector_labels(registry.NAME),
    "database": kube.selector_labels(database.NAME),
    "migrate": _task_pods(tasks.MIGRATE_COMPONENT),
    "bootstrap": _task_pods(tasks.BOOTSTRAP_COMPONENT),
}


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    port: int


FLOWS: tuple[Flow, ...] = (
    Flow("edge", "proxy", nginx_conf.LISTEN_PORT),
    # Portus follows the public token realm, which resolves to the proxy inside its pods.
    Flow("portus", "proxy", nginx_conf.LISTEN_PORT),
    Flow("background", "proxy", nginx_conf.LISTEN_PORT),
    Flow("proxy", "portus", portus.PORT),
    Flow("registry", "portus", portus.PORT),  # notifications
    Flow("proxy", "registry", registry.LISTEN_PORT),
    Flow("portus", "registry", registry.LISTEN_PORT),
    Flow("background", "registry", registry.LISTEN_PORT),
    Flow("portus", "database", database.PORT),
    Flow("background", "database", database.PORT),
    Flow("migrate", "database", database.PORT),
    Flow("bootstrap", "database", database.PORT),
)


@dataclass
class NetworkPoliciesArgs:
    namespace: pulumi.Input[str]
    edge_namespace: str | None
    """Namespace of the ingress controller; None when clients arrive from anywhere (nodePort, loadBalancer)."""


def _peer(name: str, edge_namespace: str | None) -> k8s.networking.v1.NetworkPolicyPeerArgs:
    if name == "edge":
        return k8s.networking.v1.NetworkPolicyPeerArgs(
            namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                match_labels={"kubernetes.io/metadata.name": edge_namespace or ""}
            )
        )
    return k8s.networking.v1.NetworkPolicyPeerArgs(
        pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=PEERS[name])
    )


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
                to=[k8s.networking.v1.NetworkPolicyPeerArgs(
                    namespace_selector=k8s.meta.v1.LabelSelectorArgs(
                        match_labels={"kubernetes.io/metadata.name": "kube-system"}
                    )
                )],
                ports=[k8s.networking.v1.NetworkPolicyPortArgs(protocol=protocol, port=53)
                       for protocol in ("UDP", "TCP")],
            )],
        ))
        for workload, selector in PEERS.items():
            ingress = []
            for flow in FLOWS:
                if flow.target != workload:
                    continue
                # With nodePort or loadBalancer exposure, clients arrive from any address.
                sources = None if flow.source == "edge" and args.edge_namespace is None \
                    else [_peer(flow.source, args.edge_namespace)]
                ingress.append(k8s.networking.v1.NetworkPolicyIngressRuleArgs(from_=sources, ports=_port(flow.port)))
            egress = [
                k8s.networking.v1.NetworkPolicyEgressRuleArgs(to=[_peer(flow.target, None)], ports=_port(flow.port))
                for flow in FLOWS if flow.source == workload
            ]
            policy(f"{name}-{workload}", f"allow-{workload}", k8s.networking.v1.NetworkPolicySpecArgs(
                pod_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=selector),
                policy_types=["Ingress", "Egress"],
                ingress=ingress,
                egress=egress,
            ))
        self.register_outputs({})
