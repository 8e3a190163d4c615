"""A certificate from outside the platform, the way a company's own PKI issues one: a root CA, an
intermediate that signs the server certificate, and the chain nginx serves (``tls.source: secret``)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class IssuedCertificate:
    root_pem: str
    """What clients must trust (the stack's ``caCertificate``)."""
    chain_pem: str
    """The server certificate and the intermediate, as a ``kubernetes.io/tls`` Secret's ``tls.crt``."""
    key_pem: str

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.chain_pem.encode())


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Corp"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _certificate(subject: x509.Name, key: rsa.RSAPrivateKey, issuer: x509.Name, signer: rsa.RSAPrivateKey,
                 ca: bool, extensions: Sequence[tuple[Any, bool]] = ()) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(signer, hashes.SHA256())


def issue(names: Sequence[str], organization_ca: str = "Example Corp Root CA") -> IssuedCertificate:
    """A server certificate for ``names`` from a new root and intermediate."""
    root_key, intermediate_key, key = (rsa.generate_private_key(65537, 2048) for _ in range(3))
    root_name, intermediate_name = _name(organization_ca), _name("Example Corp Issuing CA")
    root = _certificate(root_name, root_key, root_name, root_key, ca=True)
    intermediate = _certificate(intermediate_name, intermediate_key, root_name, root_key, ca=True)
    leaf = _certificate(
        _name(names[0]), key, intermediate_name, intermediate_key, ca=False,
        extensions=[
            (x509.SubjectAlternativeName([x509.DNSName(name) for name in names]), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        ],
    )
    return IssuedCertificate(
        root_pem=_pem(root),
        chain_pem=_pem(leaf) + _pem(intermediate),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def tls_secret(name: str, namespace: str, certificate: IssuedCertificate) -> dict[str, Any]:
    """The Secret a user creates (``kubectl create secret tls``) for ``tls.source: secret``."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": certificate.chain_pem, "tls.key": certificate.key_pem},
    }
