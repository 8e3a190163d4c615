"""The platform's private PKI: one CA, a server certificate per TLS endpoint and the RSA key that
signs registry tokens. Everything lives in Pulumi state, so keys and certificates stay the same across
``pulumi up`` and are renewed only when they near expiry."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_tls as tls

from components.validation import ip_address

CA_VALIDITY_HOURS = 10 * 365 * 24
# Leaf certificates stay under the 825-day ceiling that Apple and browsers apply to TLS servers; a
# `pulumi up` in the last 30 days re-issues them (the provider reports them ready for renewal).
LEAF_VALIDITY_HOURS = 365 * 24
LEAF_EARLY_RENEWAL_HOURS = 30 * 24
ORGANIZATION = "Portus platform"


@dataclass
class PkiArgs:
    servers: Mapping[str, Sequence[str]]
    """Server name (e.g. ``portus``) -> every DNS name or IP address its clients use; the first is the
    common name. Addresses become IP SANs: a client checks an address it connected to against those."""
    token_issuer: str
    """Portus's FQDN, recorded as the token certificate's common name."""
    rsa_servers: Collection[str] = ()
    """Servers whose key is RSA 2048 instead of ECDSA P-256, for a server that cannot serve an ECDSA key."""


@dataclass
class ServerCertificate:
    cert_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]
    dns_names: list[str]
    ip_addresses: list[str]


def _ecdsa_key(name: str, parent: pulumi.Resource) -> tls.PrivateKey:
    # P-256: the provider's ECDSA default is P-224, which Go, browsers and Docker reject.
    return tls.PrivateKey(name, algorithm="ECDSA", ecdsa_curve="P256", opts=pulumi.ResourceOptions(parent=parent))


def _server_key(name: str, rsa: bool, parent: pulumi.Resource) -> tls.PrivateKey:
    if rsa:
        return tls.PrivateKey(name, algorithm="RSA", rsa_bits=2048, opts=pulumi.ResourceOptions(parent=parent))
    return _ecdsa_key(name, parent)


class Pki(pulumi.ComponentResource):
    ca_cert_pem: pulumi.Output[str]
    certificates: dict[str, ServerCertificate]
    token_cert_pem: pulumi.Output[str]
    token_key_pem: pulumi.Output[str]

    def __init__(self, name: str, args: PkiArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:pki:Pki", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        ca_key = _ecdsa_key(f"{name}-ca", self)
        ca_cert = tls.SelfSignedCert(
            f"{name}-ca",
            private_key_pem=ca_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{ORGANIZATION} CA", organization=ORGANIZATION),
            is_ca_certificate=True,
            set_subject_key_id=True,
            validity_period_hours=CA_VALIDITY_HOURS,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        self.ca_cert_pem = ca_cert.cert_pem

        self.certificates = {}
        for server, names in args.servers.items():
            key = _server_key(f"{name}-{server}", server in args.rsa_servers, self)
            dns_names = [n for n in names if not ip_address(n)]
            ip_addresses = [n for n in names if ip_address(n)]
            request = tls.CertRequest(
                f"{name}-{server}",
                private_key_pem=key.private_key_pem,
                subject=tls.CertRequestSubjectArgs(common_name=names[0], organization=ORGANIZATION),
                dns_names=dns_names,
                # Only set when there are addresses: existing certificates keep their exact inputs.
                ip_addresses=ip_addresses or None,
                opts=child,
            )
            cert = tls.LocallySignedCert(
                f"{name}-{server}",
                cert_request_pem=request.cert_request_pem,
                ca_private_key_pem=ca_key.private_key_pem,
                ca_cert_pem=ca_cert.cert_pem,
                validity_period_hours=LEAF_VALIDITY_HOURS,
                early_renewal_hours=LEAF_EARLY_RENEWAL_HOURS,
                set_subject_key_id=True,
                # Server and client auth: nginx, Portus and the registry are each other's TLS clients.
                allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"],
                opts=child,
            )
            self.certificates[server] = ServerCertificate(
                cert_pem=cert.cert_pem,
                private_key_pem=pulumi.Output.secret(key.private_key_pem),
                dns_names=dns_names,
                ip_addresses=ip_addresses,
            )

        # Portus signs registry tokens with RS256, so this key must be RSA; the registry trusts the
        # self-signed certificate of the same key as its `rootcertbundle`.
        token_key = tls.PrivateKey(f"{name}-token", algorithm="RSA", rsa_bits=4096, opts=child)
        token_cert = tls.SelfSignedCert(
            f"{name}-token",
            private_key_pem=token_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=args.token_issuer, organization=ORGANIZATION),
            validity_period_hours=CA_VALIDITY_HOURS,
            allowed_uses=["digital_signature"],
            opts=child,
        )
        self.token_cert_pem = token_cert.cert_pem
        self.token_key_pem = pulumi.Output.secret(token_key.private_key_pem)

        self.register_outputs({
            "caCertPem": self.ca_cert_pem,
            "tokenCertPem": self.token_cert_pem,
            "certificates": {server: cert.cert_pem for server, cert in self.certificates.items()},
        })
