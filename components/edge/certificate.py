"""Where the edge certificate comes from: the certificate clients see on the public names.

Each source (``tls.source``) is one small class behind ``EdgeCertificateSource``. What it contributes is
an ``EdgeTls``: the name of the ``kubernetes.io/tls`` Secret the edge serves (the proxy mounts it, the
Ingress names it), the certificate objects it owns, the chain clients must trust (the ``caCertificate``
output, the nodes' trust and Portus's own trust bundle) and the network flows its issuance needs.

- ``selfSigned`` (``GeneratedCertificate``): the platform CA signs it; it is the proxy's platform
  certificate with the public names added, as it always was.
- ``secret`` (``ExistingSecret``): a Secret the user keeps (corporate PKI); nothing is created.
- ``certManager`` (``CertManagerCertificate``): a cert-manager ``Certificate`` whose Secret cert-manager
  writes and renews.

The platform CA keeps securing every hop inside the cluster whatever the source: Portus and the registry
serve certificates from it, and the proxy (where it runs) also serves its platform certificate
(``PLATFORM_SECRET``) on its Service names, for clients inside the cluster. A renewed edge certificate
reaches nginx without a pod roll: the proxy reloads itself when the mounted files change
(``reloader.py``), which also covers a Secret this program does not own; ingress-nginx watches the
Secret it serves.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.network import Flow, Outside
from components.pki import ServerCertificate

COMPONENT = "edge"
TYPE = "portus:edge:EdgeCertificate"
# The proxy's certificate from the platform CA (and, with selfSigned, the edge certificate itself). The
# name it always had: earlier versions declared it in the proxy's component.
PLATFORM_SECRET = "proxy-tls"
# What Portus's pods must trust for the edge beyond the platform CA, which is in their bundle already, as
# `ca.crt`: empty when the platform CA or a public CA signs the edge. They reach the public token realm
# through the edge.
EDGE_TRUST = "portus-edge-trust"
EDGE_TRUST_FILE = "ca.crt"
CERTIFICATE_NAME = "edge"
# Not the platform Secret's name: switching from selfSigned, Pulumi deletes `proxy-tls` after cert-manager
# has written this one.
CERT_MANAGER_SECRET = "edge-tls"
CERT_MANAGER_API = "cert-manager.io/v1"
CERT_MANAGER_GROUP = "cert-manager.io"
# What cert-manager issues when the Certificate sets no duration (90 days).
CERT_MANAGER_DEFAULT_DURATION = "2160h"
# cert-manager's HTTP-01 solver pods listen here (pkg/issuer/acme/http/http.go `acmeSolverListenPort` @ v1.21.0).
ACME_SOLVER_PORT = 8089
# pulumi-kubernetes awaits no custom resource unless `pulumi.com/waitFor` says what to wait for
# (metadata/overrides.go `ReadyCondition`, since 4.18.0; the floor is 4.29). `condition=Ready` checks the
# Ready condition's observedGeneration against metadata.generation (await/condition/kubectl.go
# `checkCondition` @ v4.29.0..v4.32.0), so an update waits for cert-manager to issue for the new spec.
WAIT_FOR_READY = {"pulumi.com/waitFor": "condition=Ready"}
# An ACME order with DNS-01 propagation checks can outlast the provider's 10-minute default.
ISSUANCE_TIMEOUTS = pulumi.CustomTimeouts(create="15m", update="15m")


@dataclass
class EdgeCertificateArgs:
    namespace: pulumi.Input[str]
    hosts: list[str]
    """The public names (``host``, ``registryHost``): what the edge certificate must name."""
    platform_certificate: ServerCertificate
    """The proxy's certificate from the platform CA."""
    platform_ca_pem: pulumi.Input[str]
    moved_from: pulumi.Input[str]
    """URN of the component that declared the platform Secret in earlier versions (an alias keeps it)."""


@dataclass
class EdgeTls:
    """What a source gives the edge."""

    secret_name: pulumi.Input[str]
    """The ``kubernetes.io/tls`` Secret the edge serves (``tls.crt`` with its chain, ``tls.key``). An output
    of the object that makes it, when the program makes it: what consumes the name waits for it."""
    client_trust: pulumi.Input[str] | None
    """PEM of the chain clients must trust; None when a public CA signs the edge (the system roots do)."""


class EdgeCertificateSource(Protocol):
    @property
    def platform_signed(self) -> bool:
        """Whether the platform CA signs the edge certificate: the public names then join the proxy's
        platform certificate."""

    @property
    def client_trust_configured(self) -> bool:
        """Whether clients need a CA installed (known from configuration, before anything is declared)."""

    def declare(self, name: str, args: EdgeCertificateArgs, platform_secret: pulumi.Output[str],
                parent: pulumi.Resource) -> EdgeTls:
        """Declares what the source owns, as children of ``parent``."""

    def flows(self, edge_source: Outside) -> list[Flow]:
        """Connections issuance needs, ``edge_source`` being where clients reach the edge from."""


@dataclass(frozen=True)
class GeneratedCertificate:
    """``tls.source: selfSigned``: the platform CA signs the edge certificate."""

    @property
    def platform_signed(self) -> bool:
        return True

    @property
    def client_trust_configured(self) -> bool:
        return True

    def declare(self, name: str, args: EdgeCertificateArgs, platform_secret: pulumi.Output[str],
                parent: pulumi.Resource) -> EdgeTls:
        return EdgeTls(secret_name=platform_secret, client_trust=args.platform_ca_pem)

    def flows(self, edge_source: Outside) -> list[Flow]:
        return []


class _SignedElsewhere:
    """A source whose certificate the platform CA does not sign: clients trust ``ca_certificate``, the
    private CA that signs it, or (None) the system roots, for a public CA."""

    ca_certificate: str | None

    @property
    def platform_signed(self) -> bool:
        return False

    @property
    def client_trust_configured(self) -> bool:
        return self.ca_certificate is not None


@dataclass(frozen=True)
class ExistingSecret(_SignedElsewhere):
    """``tls.source: secret``: a ``kubernetes.io/tls`` Secret in the namespace that the user keeps (and
    renews) for the public names; ``ca_certificate`` is the private CA that signs it, if one does."""

    secret_name: str
    ca_certificate: str | None = None

    def declare(self, name: str, args: EdgeCertificateArgs, platform_secret: pulumi.Output[str],
                parent: pulumi.Resource) -> EdgeTls:
        return EdgeTls(secret_name=self.secret_name, client_trust=self.ca_certificate)

    def flows(self, edge_source: Outside) -> list[Flow]:
        return []


@dataclass(frozen=True)
class IssuerRef:
    name: str
    kind: str = "Issuer"
    group: str = CERT_MANAGER_GROUP


@dataclass(frozen=True)
class CertManagerCertificate(_SignedElsewhere):
    """``tls.source: certManager``: a cert-manager ``Certificate`` for the public names, issued by
    ``issuer`` into CERT_MANAGER_SECRET, with a new private key at every renewal."""

    issuer: IssuerRef
    duration: str | None = None
    renew_before: str | None = None
    ca_certificate: str | None = None
    """The CA behind a private issuer (CA, Vault), for the clients; None for a public one (ACME)."""

    def spec(self, hosts: list[str]) -> dict[str, Any]:
        """The Certificate's spec. An address among the hosts is an IP SAN (a CA issuer signs it; ACME
        issuers such as Let's Encrypt refuse addresses)."""
        addresses = [host for host in hosts if _is_address(host)]
        spec: dict[str, Any] = {
            "secretName": CERT_MANAGER_SECRET,
            "secretTemplate": {"labels": kube.labels(CERT_MANAGER_SECRET, COMPONENT)},
            "dnsNames": [host for host in hosts if not _is_address(host)],
            **({"ipAddresses": addresses} if addresses else {}),
            "issuerRef": {"name": self.issuer.name, "kind": self.issuer.kind, "group": self.issuer.group},
            # RSA 2048, cert-manager's own default, which every issuer signs (some corporate CAs refuse
            # ECDSA). `Always` is the default only from cert-manager 1.18 on: said here for older ones.
            "privateKey": {"algorithm": "RSA", "size": 2048, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature", "key encipherment"],
        }
        if self.duration:
            spec["duration"] = self.duration
        if self.renew_before:
            spec["renewBefore"] = self.renew_before
        return spec

    def declare(self, name: str, args: EdgeCertificateArgs, platform_secret: pulumi.Output[str],
                parent: pulumi.Resource) -> EdgeTls:
        certificate = k8s.apiextensions.CustomResource(
            f"{name}-certificate",
            api_version=CERT_MANAGER_API,
            kind="Certificate",
            metadata=kube.metadata(CERTIFICATE_NAME, args.namespace, COMPONENT, annotations=WAIT_FOR_READY),
            spec=self.spec(args.hosts),
            opts=pulumi.ResourceOptions(parent=parent, custom_timeouts=ISSUANCE_TIMEOUTS),
        )
        # The name as an output of the Certificate: the proxy and the Ingress that use it are created
        # once Pulumi has seen the Certificate Ready, so nginx never starts without its certificate. (Of
        # its URN, which a preview knows, unlike the ID of a Certificate not created yet.)
        return EdgeTls(
            secret_name=certificate.urn.apply(lambda _: CERT_MANAGER_SECRET),
            client_trust=self.ca_certificate,
        )

    def flows(self, edge_source: Outside) -> list[Flow]:
        # ACME HTTP-01: cert-manager starts its solver pods in the Certificate's namespace, where everything
        # is denied by default; the CA reaches them through the ingress controller.
        return [Flow(edge_source, "acme-solver", ACME_SOLVER_PORT)]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class EdgeCertificate(pulumi.ComponentResource):
    """The proxy's platform certificate as a Secret, what the source declares, and the chain clients must
    trust as a ConfigMap for Portus's pods."""

    tls: EdgeTls
    edge_trust: pulumi.Output[str]
    """The ConfigMap with what Portus must trust for the edge besides the platform CA, as ``ca.crt``."""
    edge_trust_pem: pulumi.Input[str]
    """Its content."""
    platform_secret: pulumi.Output[str]

    def __init__(self, name: str, source: EdgeCertificateSource, args: EdgeCertificateArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        platform = kube.tls_secret(
            PLATFORM_SECRET, PLATFORM_SECRET, args.namespace, "proxy", args.platform_certificate,
            # Same Secret as before, not a new one: only its parent changed.
            pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(parent=args.moved_from)]),
        )
        self.platform_secret = platform.metadata.name
        self.tls = source.declare(name, args, self.platform_secret, self)
        self.edge_trust_pem = "" if source.platform_signed else self.tls.client_trust or ""
        trust = k8s.core.v1.ConfigMap(
            f"{name}-trust",
            metadata=kube.metadata(EDGE_TRUST, args.namespace, COMPONENT),
            data={EDGE_TRUST_FILE: self.edge_trust_pem},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.edge_trust = trust.metadata.name
        self.register_outputs({"secretName": self.tls.secret_name, "edgeTrust": self.edge_trust})
