"""The platform's namespace, under the Pod Security Standard every workload meets, and the trust
bundle (the platform CA) that every TLS client in it mounts."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube

TRUST_BUNDLE = "portus-trust-bundle"
CA_FILE = "ca.crt"
# Every workload runs non-root with a read-only root, no privilege escalation, all capabilities
# dropped and the runtime's seccomp profile: the namespace can enforce `restricted`.
POD_SECURITY_LEVEL = "restricted"


@dataclass
class PlatformNamespaceArgs:
    name: str
    ca_cert_pem: pulumi.Input[str]
    kept: kube.KeptData
    """Deleting a namespace deletes every claim in it: a namespace that holds kept data stays too."""


class PlatformNamespace(pulumi.ComponentResource):
    name: pulumi.Output[str]
    trust_bundle: pulumi.Output[str]
    """Name of the ConfigMap with the CA as ``ca.crt``."""
    ca_secret: pulumi.Output[str]
    """The same CA as a Secret, for consumers that only read Secrets (ingress-nginx's proxy-ssl-secret)."""

    def __init__(self, name: str, args: PlatformNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:namespace:PlatformNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namespace = k8s.core.v1.Namespace(
            name,
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=args.name,
                labels=kube.namespace_labels(POD_SECURITY_LEVEL),
            ),
            opts=args.kept.options(self),
        )
        self.name = namespace.metadata.name
        bundle = k8s.core.v1.ConfigMap(
            f"{name}-trust-bundle",
            metadata=kube.metadata(TRUST_BUNDLE, self.name, "pki"),
            data={CA_FILE: args.ca_cert_pem},
            opts=child,
        )
        self.trust_bundle = bundle.metadata.name
        ca_secret = kube.opaque_secret(
            f"{name}-ca", f"{TRUST_BUNDLE}-secret", self.name, "pki", {CA_FILE: args.ca_cert_pem}, child,
        )
        self.ca_secret = ca_secret.metadata.name
        self.register_outputs({"name": self.name, "trustBundle": self.trust_bundle})
