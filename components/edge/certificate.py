"""The edge certificate: what clients outside the cluster are shown for the public names. One Secret
holds it, and whatever serves the public names reads it there: the Ingress (exposure=ingress) or the
proxy (nodePort, loadBalancer)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import kube
from components.pki import ServerCertificate

# Named after the proxy, which served it first: the Ingresses of existing stacks refer to it by name.
SECRET_NAME = "proxy-tls"
COMPONENT = "edge"


@dataclass
class EdgeCertificateArgs:
    namespace: pulumi.Input[str]
    certificate: ServerCertificate
    moved_from: pulumi.Input[str]
    """URN of the component that created the Secret in earlier versions (the proxy): the Secret keeps its
    URN through an alias, so an upgrade updates it in place instead of creating a second object of the
    same name, which the API server refuses."""


class EdgeCertificate(pulumi.ComponentResource):
    secret_name: pulumi.Output[str]

    def __init__(self, name: str, args: EdgeCertificateArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:edge:EdgeCertificate", name, None, opts)
        secret = kube.tls_secret(
            SECRET_NAME, SECRET_NAME, args.namespace, COMPONENT, args.certificate,
            pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=args.moved_from)]),
        )
        self.secret_name = secret.metadata.name
        self.register_outputs({"secretName": self.secret_name})
