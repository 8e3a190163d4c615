"""Certificates and keys from outside the platform: impostors, to show that each TLS hop and the token
check trust the platform's own CA and key and nothing else, and the PKI of services outside the platform
(a directory, a mail relay) that Portus is configured to trust."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Impostor:
    ca_pem: str
    cert_pem: str
    key_pem: str


def _issue(ca_cn: str, subject: x509.Name, extensions: list[x509.Extension[x509.ExtensionType]]) -> Impostor:
    """A new CA named ``ca_cn`` and a certificate it issues for ``subject`` with ``extensions``."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_cn)])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension in extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Impostor(
        ca.public_bytes(serialization.Encoding.PEM).decode(),
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def impostor_of(cert_pem: str) -> Impostor:
    """A certificate with the subject and names of ``cert_pem``, issued by a CA of its own."""
    genuine = x509.load_pem_x509_certificate(cert_pem.encode())
    kept = [e for e in genuine.extensions if isinstance(e.value, x509.SubjectAlternativeName | x509.BasicConstraints)]
    return _issue("Impostor CA", genuine.subject, kept)


def outside_server(ca_cn: str, host: str) -> Impostor:
    """A server outside the platform (a directory, a mail relay): its own CA, and its certificate for ``host``."""
    names = x509.SubjectAlternativeName([x509.DNSName(host)])
    return _issue(ca_cn, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]), [
        x509.Extension(names.oid, False, names),
        x509.Extension(x509.BasicConstraints.oid, True, x509.BasicConstraints(ca=False, path_length=None)),
    ])
