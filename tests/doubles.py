"""Provider doubles for running the Pulumi program under ``pulumi.runtime.set_mocks``.

The doubles behave like the real tls, random and kubernetes providers closely
enough that tests can check real artefacts: keys and certificates are genuine
(made with ``cryptography``), passwords honour the provider's character rules,
and Kubernetes objects get the fields the provider or API server would fill in.
Every registration is recorded so tests and the renderer can inspect it.
"""

from __future__ import annotations

import base64
import copy
import datetime
import hashlib
import ipaddress
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from google.protobuf import json_format
from pulumi.output import Unknown
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

JSON = Any
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
Handler = Callable[[MockResourceArgs, dict[str, JSON]], tuple[str, dict[str, JSON]]]


class ProviderError(Exception):
    """Raised where the real provider would fail the create (bad inputs, unknown types)."""


@dataclass
class ResourceRecord:
    """One registration seen by the mocks, with secret wrappers removed."""

    type: str
    name: str
    custom: bool
    id: str | None
    inputs: dict[str, JSON]
    outputs: dict[str, JSON]
    secret_inputs: list[str] = field(default_factory=list)
    secret_outputs: list[str] = field(default_factory=list)
    options: dict[str, JSON] = field(default_factory=dict)
    """Resource options as the engine receives them: urn, parent, dependencies (URNs), protect,
    retainOnDelete, deleteBeforeReplace, ignoreChanges, customTimeouts, aliases."""

    def to_json(self) -> dict[str, JSON]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, JSON]) -> ResourceRecord:
        return cls(**data)


# --------------------------------------------------------------------------- helpers


def unwrap_secrets(value: JSON) -> JSON:
    """Strip Pulumi's secret envelopes at every depth; a value unknown in a preview becomes the
    engine's marker for it (``rpc.UNKNOWN``)."""
    if isinstance(value, Unknown):
        return rpc.UNKNOWN
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def normalize_numbers(value: JSON) -> JSON:
    """Turn integral floats back into ints.

    The mock monitor moves properties as protobuf Structs, which only know
    doubles; the engine's JSON would carry ``80`` rather than ``80.0``.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: normalize_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize_numbers(v) for v in value]
    return value


def _int(inputs: Mapping[str, JSON], key: str, default: int | None = None) -> int:
    value = inputs.get(key, default)
    if value is None:
        raise ProviderError(f"missing required argument {key!r}")
    if isinstance(value, bool) or not float(value).is_integer():
        raise ProviderError(f"{key!r} must be an integer, got {value!r}")
    return int(value)


def _bool(inputs: Mapping[str, JSON], key: str, default: bool) -> bool:
    value = inputs.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ProviderError(f"{key!r} must be a boolean, got {value!r}")
    return value


def _str_list(inputs: Mapping[str, JSON], key: str) -> list[str]:
    value = inputs.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProviderError(f"{key!r} must be a list of strings, got {value!r}")
    return value


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------- tls

_CURVES: dict[str, ec.EllipticCurve] = {
    "P224": ec.SECP224R1(),
    "P256": ec.SECP256R1(),
    "P384": ec.SECP384R1(),
    "P521": ec.SECP521R1(),
}

# The provider's allowed_uses vocabulary (terraform-provider-tls), split the way
# Go's x509 package splits it: KeyUsage bits vs ExtendedKeyUsage OIDs.
_KEY_USAGES = {
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "cert_signing",
    "crl_signing",
    "encipher_only",
    "decipher_only",
}
_EXTENDED_KEY_USAGES: dict[str, ObjectIdentifier] = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "ipsec_end_system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"),
    "ipsec_user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft_server_gated_crypto": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}
ALLOWED_USES = frozenset(_KEY_USAGES | _EXTENDED_KEY_USAGES.keys())

# Go's pkix.Name.ToRDNSequence order, which the provider's certificates follow.
_SUBJECT_FIELDS: list[tuple[str, ObjectIdentifier]] = [
    ("country", NameOID.COUNTRY_NAME),
    ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("streetAddresses", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE),
    ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("commonName", NameOID.COMMON_NAME),
    ("serialNumber", NameOID.SERIAL_NUMBER),
    ("emailAddress", NameOID.EMAIL_ADDRESS),
]


def _generate_key(inputs: Mapping[str, JSON]) -> PrivateKey:
    algorithm = inputs.get("algorithm")
    if algorithm == "RSA":
        return rsa.generate_private_key(
            public_exponent=65537, key_size=_int(inputs, "rsaBits", 2048)
        )
    if algorithm == "ECDSA":
        curve = inputs.get("ecdsaCurve") or "P224"
        if curve not in _CURVES:
            raise ProviderError(
                f"ecdsa_curve must be one of {sorted(_CURVES)}, got {curve!r}"
            )
        return ec.generate_private_key(_CURVES[curve])
    if algorithm == "ED25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise ProviderError(
        f"algorithm must be one of RSA, ECDSA, ED25519, got {algorithm!r}"
    )


def _private_key_pem(key: PrivateKey) -> str:
    # Same PEM block types as the provider: PKCS#1 for RSA, SEC1 for ECDSA, PKCS#8 for ED25519.
    fmt = (
        serialization.PrivateFormat.PKCS8
        if isinstance(key, ed25519.Ed25519PrivateKey)
        else serialization.PrivateFormat.TraditionalOpenSSL
    )
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.NoEncryption()
    ).decode()


def _key_outputs(key: PrivateKey) -> dict[str, str]:
    public = key.public_key()
    outputs = {
        "privateKeyPem": _private_key_pem(key),
        "privateKeyPemPkcs8": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        "publicKeyPem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        # OpenSSH has no P-224: the provider leaves these empty for that curve.
        "privateKeyOpenssh": "",
        "publicKeyOpenssh": "",
        "publicKeyFingerprintMd5": "",
        "publicKeyFingerprintSha256": "",
    }
    try:
        authorized = public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        private_ssh = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    except (ValueError, UnsupportedAlgorithm):
        return outputs
    blob = base64.b64decode(authorized.split()[1])
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    outputs.update(
        privateKeyOpenssh=private_ssh.decode(),
        publicKeyOpenssh=authorized.decode() + "\n",
        publicKeyFingerprintMd5=":".join(md5[i : i + 2] for i in range(0, len(md5), 2)),
        publicKeyFingerprintSha256="SHA256:"
        + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("="),
    )
    return outputs


def _load_private_key(pem: JSON, what: str) -> PrivateKey:
    if not isinstance(pem, str):
        raise ProviderError(f"{what} must be a PEM string")
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except ValueError as exc:
        raise ProviderError(f"failed to decode {what}: {exc}") from exc
    if not isinstance(
        key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)
    ):
        raise ProviderError(f"{what}: unsupported key type {type(key).__name__}")
    return key


def _key_pem_input(inputs: Mapping[str, JSON], base: str) -> str:
    """Exactly one of ``<base>`` or the write-only ``<base>Wo`` (with its version) must be set."""
    plain, write_only = inputs.get(base), inputs.get(base + "Wo")
    if (plain is None) == (write_only is None):
        raise ProviderError(f"exactly one of {base} or {base}Wo must be set")
    if write_only is not None and inputs.get(base + "WoVersion") is None:
        raise ProviderError(f"{base}WoVersion is required with {base}Wo")
    pem = plain if plain is not None else write_only
    if not isinstance(pem, str):
        raise ProviderError(f"{base} must be a PEM string")
    return pem


def key_algorithm(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return "RSA"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return "ECDSA"
    return "ED25519"


def _signature_hash(
    key: PrivateKey,
) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    # Go's x509 defaults: SHA-256, except larger curves pick a matching digest; Ed25519 signs raw.
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size == 384:
            return hashes.SHA384()
        if key.curve.key_size == 521:
            return hashes.SHA512()
    return hashes.SHA256()


def _subject(inputs: Mapping[str, JSON]) -> x509.Name:
    subject = inputs.get("subject") or {}
    unknown = set(subject) - {name for name, _ in _SUBJECT_FIELDS}
    if unknown:
        raise ProviderError(f"unsupported subject fields: {sorted(unknown)}")
    attributes = []
    for key, oid in _SUBJECT_FIELDS:
        value = subject.get(key)
        for item in value if isinstance(value, list) else [value]:
            if item:
                attributes.append(x509.NameAttribute(oid, str(item)))
    return x509.Name(attributes)


def _subject_alt_names(inputs: Mapping[str, JSON]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName(n) for n in _str_list(inputs, "dnsNames")
    ]
    for address in _str_list(inputs, "ipAddresses"):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError as exc:
            raise ProviderError(f"invalid IP address {address!r}") from exc
    names += [x509.UniformResourceIdentifier(u) for u in _str_list(inputs, "uris")]
    return names


def _allowed_uses(inputs: Mapping[str, JSON]) -> list[str]:
    if inputs.get("allowedUses") is None:
        raise ProviderError("missing required argument 'allowedUses'")
    uses = _str_list(inputs, "allowedUses")
    unknown = [u for u in uses if u not in ALLOWED_USES]
    if unknown:
        raise ProviderError(
            f"allowed_uses value(s) {unknown} must be one of: {sorted(ALLOWED_USES)}"
        )
    return uses


def _key_usage(uses: Iterable[str]) -> x509.KeyUsage | None:
    flags = set(uses) & _KEY_USAGES
    if not flags:
        return None
    return x509.KeyUsage(
        digital_signature="digital_signature" in flags,
        content_commitment="content_commitment" in flags,
        key_encipherment="key_encipherment" in flags,
        data_encipherment="data_encipherment" in flags,
        key_agreement="key_agreement" in flags,
        key_cert_sign="cert_signing" in flags,
        crl_sign="crl_signing" in flags,
        # cryptography only allows these two with key_agreement; Go encodes them regardless.
        encipher_only="encipher_only" in flags and "key_agreement" in flags,
        decipher_only="decipher_only" in flags and "key_agreement" in flags,
    )


@dataclass
class _CertSpec:
    """What the provider's shared certificate code needs, after input validation."""

    subject: x509.Name
    public_key: PublicKey
    alt_names: list[x509.GeneralName]
    uses: list[str]
    validity_hours: int
    early_renewal_hours: int
    is_ca: bool
    max_path_length: int | None
    set_subject_key_id: bool


def _cert_spec(
    inputs: Mapping[str, JSON],
    subject: x509.Name,
    public_key: PublicKey,
    alt_names: list[x509.GeneralName],
) -> _CertSpec:
    validity = _int(inputs, "validityPeriodHours")
    early = _int(inputs, "earlyRenewalHours", 0)
    if validity < 0 or early < 0:
        raise ProviderError(
            "validity_period_hours and early_renewal_hours must be >= 0"
        )
    is_ca = _bool(inputs, "isCaCertificate", False)
    max_path = inputs.get("maxPathLength")
    return _CertSpec(
        subject=subject,
        public_key=public_key,
        alt_names=alt_names,
        uses=_allowed_uses(inputs),
        validity_hours=validity,
        early_renewal_hours=early,
        is_ca=is_ca,
        max_path_length=_int(inputs, "maxPathLength")
        if is_ca and max_path is not None
        else None,
        set_subject_key_id=_bool(inputs, "setSubjectKeyId", False),
    )


def _issue(
    spec: _CertSpec,
    issuer: x509.Name,
    signer: PrivateKey,
    authority_key_id: x509.AuthorityKeyIdentifier | None,
) -> dict[str, JSON]:
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    not_after = now + datetime.timedelta(hours=spec.validity_hours)
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(issuer)
        .public_key(spec.public_key)
        # 128-bit positive serial, as the provider draws it.
        .serial_number(secrets.randbits(128) or 1)
        .not_valid_before(now)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=spec.is_ca, path_length=spec.max_path_length),
            critical=True,
        )
    )
    key_usage = _key_usage(spec.uses)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    extended = [_EXTENDED_KEY_USAGES[u] for u in spec.uses if u in _EXTENDED_KEY_USAGES]
    if extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended), critical=False)
    if spec.alt_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(spec.alt_names), critical=False
        )
    # Go adds a subject key id to every CA certificate even when not asked to.
    if spec.set_subject_key_id or spec.is_ca:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(spec.public_key), critical=False
        )
    if authority_key_id is not None:
        builder = builder.add_extension(authority_key_id, critical=False)
    cert = builder.sign(signer, _signature_hash(signer))
    renew_at = not_after - datetime.timedelta(hours=spec.early_renewal_hours)
    return {
        "certPem": cert.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": _rfc3339(now),
        "validityEndTime": _rfc3339(not_after),
        "readyForRenewal": now >= renew_at,
        "earlyRenewalHours": spec.early_renewal_hours,
        "isCaCertificate": spec.is_ca,
        "setSubjectKeyId": spec.set_subject_key_id,
    }


def _tls_private_key(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    key = _generate_key(inputs)
    outputs = {**inputs, **_key_outputs(key)}
    if inputs.get("algorithm") == "RSA":
        outputs.setdefault("rsaBits", 2048)
    if inputs.get("algorithm") == "ECDSA":
        outputs.setdefault("ecdsaCurve", "P224")
    return _fingerprint_id(outputs["publicKeyPem"]), outputs


def _fingerprint_id(pem: str) -> str:
    # The provider uses a hash of the key material as the resource id.
    return hashlib.sha1(pem.encode(), usedforsecurity=False).hexdigest()


def _tls_self_signed_cert(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    key = _load_private_key(_key_pem_input(inputs, "privateKeyPem"), "private_key_pem")
    spec = _cert_spec(
        inputs, _subject(inputs), key.public_key(), _subject_alt_names(inputs)
    )
    authority = None
    if _bool(inputs, "setAuthorityKeyId", False):
        # Self-signed: the authority key id equals the certificate's own subject key id.
        ski = x509.SubjectKeyIdentifier.from_public_key(spec.public_key)
        authority = x509.AuthorityKeyIdentifier(ski.digest, None, None)
    outputs = {
        **inputs,
        **_issue(spec, spec.subject, key, authority),
        "keyAlgorithm": key_algorithm(key),
    }
    outputs["setAuthorityKeyId"] = authority is not None
    outputs.pop("privateKeyPemWo", None)
    return _serial_id(outputs["certPem"]), outputs


def _serial_id(cert_pem: str) -> str:
    # The provider's id for certificates is the serial number in decimal.
    return str(x509.load_pem_x509_certificate(cert_pem.encode()).serial_number)


def _tls_cert_request(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    key = _load_private_key(_key_pem_input(inputs, "privateKeyPem"), "private_key_pem")
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject(inputs))
    alt_names = _subject_alt_names(inputs)
    if alt_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(alt_names), critical=False
        )
    csr = builder.sign(key, _signature_hash(key))
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    outputs = {**inputs, "certRequestPem": pem, "keyAlgorithm": key_algorithm(key)}
    outputs.pop("privateKeyPemWo", None)
    return hashlib.sha1(pem.encode(), usedforsecurity=False).hexdigest(), outputs


def _tls_locally_signed_cert(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    request_pem = inputs.get("certRequestPem")
    ca_cert_pem = inputs.get("caCertPem")
    if not isinstance(request_pem, str) or not isinstance(ca_cert_pem, str):
        raise ProviderError("cert_request_pem and ca_cert_pem are required PEM strings")
    ca_key = _load_private_key(
        _key_pem_input(inputs, "caPrivateKeyPem"), "ca_private_key_pem"
    )
    try:
        csr = x509.load_pem_x509_csr(request_pem.encode())
        ca_cert = x509.load_pem_x509_certificate(ca_cert_pem.encode())
    except ValueError as exc:
        raise ProviderError(f"failed to decode certificate input: {exc}") from exc
    if not csr.is_signature_valid:
        raise ProviderError("certificate request signature is invalid")
    try:
        is_ca = ca_cert.extensions.get_extension_for_class(
            x509.BasicConstraints
        ).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise ProviderError("ca_cert_pem is not a CA certificate")
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    if ca_key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    ) != ca_cert.public_key().public_bytes(serialization.Encoding.DER, spki):
        raise ProviderError(
            "ca_private_key_pem does not match the public key of ca_cert_pem"
        )
    try:
        alt_names = list(
            csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        )
    except x509.ExtensionNotFound:
        alt_names = []
    public_key = csr.public_key()
    if not isinstance(
        public_key,
        (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey),
    ):
        raise ProviderError(f"unsupported request key type {type(public_key).__name__}")
    spec = _cert_spec(inputs, csr.subject, public_key, alt_names)
    try:
        ca_ski = ca_cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value
        authority = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca_ski
        )
    except x509.ExtensionNotFound:
        authority = x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()
        )
    outputs = {
        **inputs,
        **_issue(spec, ca_cert.subject, ca_key, authority),
        "caKeyAlgorithm": key_algorithm(ca_key),
    }
    outputs.pop("caPrivateKeyPemWo", None)
    return _serial_id(outputs["certPem"]), outputs


# --------------------------------------------------------------------------- random

_LOWER = "abcdefghijklmnopqrstuvwxyz"
_UPPER = _LOWER.upper()
_NUMERIC = "0123456789"
DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"


def _random_string_outputs(inputs: dict[str, JSON]) -> dict[str, JSON]:
    length = _int(inputs, "length")
    mins = {
        k: _int(inputs, k, 0)
        for k in ("minUpper", "minLower", "minNumeric", "minSpecial")
    }
    if length < 1:
        raise ProviderError(f"length must be at least 1, got {length}")
    if any(v < 0 for v in mins.values()):
        raise ProviderError("min_* values must be >= 0")
    if length < sum(mins.values()):
        raise ProviderError(
            f"length ({length}) must be >= min_upper + min_lower + min_numeric + min_special"
        )
    numeric, number = inputs.get("numeric"), inputs.get("number")
    if numeric is not None and number is not None and numeric != number:
        raise ProviderError("numeric and number (deprecated) must agree")
    flags = {
        "upper": _bool(inputs, "upper", True),
        "lower": _bool(inputs, "lower", True),
        "numeric": _bool(inputs, "numeric", _bool(inputs, "number", True)),
        "special": _bool(inputs, "special", True),
    }
    if not any(flags.values()):
        raise ProviderError(
            "at least one of upper, lower, numeric and special must be true"
        )
    special_chars = inputs.get("overrideSpecial") or DEFAULT_SPECIAL
    pool = "".join(
        chars
        for flag, chars in (
            ("upper", _UPPER),
            ("lower", _LOWER),
            ("numeric", _NUMERIC),
            ("special", special_chars),
        )
        if flags[flag]
    )
    # Like the provider: minimums are drawn from their class (even a disabled one),
    # the rest from the enabled pool, then everything is shuffled.
    chars = [secrets.choice(_UPPER) for _ in range(mins["minUpper"])]
    chars += [secrets.choice(_LOWER) for _ in range(mins["minLower"])]
    chars += [secrets.choice(_NUMERIC) for _ in range(mins["minNumeric"])]
    chars += [secrets.choice(special_chars) for _ in range(mins["minSpecial"])]
    chars += [secrets.choice(pool) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return {
        **inputs,
        **mins,
        **flags,
        "number": flags["numeric"],
        "length": length,
        "result": "".join(chars),
    }


def _random_password(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    outputs = _random_string_outputs(inputs)
    try:
        import bcrypt
    except ImportError:  # optional: without it the bcryptHash output is simply absent
        pass
    else:
        outputs["bcryptHash"] = bcrypt.hashpw(
            outputs["result"].encode()[:72], bcrypt.gensalt()
        ).decode()
    return "none", outputs


def _random_string(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    outputs = _random_string_outputs(inputs)
    return outputs["result"], outputs


def _random_id(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    size = _int(inputs, "byteLength")
    if size < 1:
        raise ProviderError(f"byte_length must be at least 1, got {size}")
    raw = secrets.token_bytes(size)
    prefix = inputs.get("prefix") or ""
    b64_url = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return b64_url, {
        **inputs,
        "hex": prefix + raw.hex(),
        "b64Url": prefix + b64_url,
        "b64Std": prefix + base64.b64encode(raw).decode(),
        "dec": prefix + str(int.from_bytes(raw, "big")),
    }


# --------------------------------------------------------------------------- kubernetes

_K8S_TOKEN = re.compile(
    r"^kubernetes:(?P<group>[^:/]+)/(?P<version>[^:/]+):(?P<kind>\w+)$"
)
# Modules that are multi-object components or Helm releases, not single API objects.
_K8S_NON_OBJECT_GROUPS = {"helm.sh", "yaml", "kustomize"}
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "StorageClass",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
    }
)


def kubernetes_gvk(type_token: str) -> tuple[str, str] | None:
    """``kubernetes:apps/v1:Deployment`` -> (``apps/v1``, ``Deployment``); None if not an API object."""
    match = _K8S_TOKEN.match(type_token)
    if match is None or match["group"] in _K8S_NON_OBJECT_GROUPS:
        return None
    group = match["group"]
    api_version = match["version"] if group == "core" else f"{group}/{match['version']}"
    return api_version, match["kind"]


def _stable_int(text: str, modulo: int) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % modulo


def _fake_cluster_ip(key: str) -> str:
    # Stay clear of the network address and the first addresses a cluster reserves
    # (10.96.0.1 is the kubernetes Service, 10.96.0.10 usually DNS).
    base = int(ipaddress.ip_address("10.96.0.0"))
    return str(ipaddress.ip_address(base + 16 + _stable_int(key, (1 << 20) - 32)))


def _checked_object(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    """The object as the provider's Check leaves it (auto-name, namespace), and its ID ``fqObjName``."""
    gvk = kubernetes_gvk(args.typ)
    if gvk is None:
        raise ProviderError(f"unsupported kubernetes resource type {args.typ}")
    api_version, kind = gvk
    outputs = copy.deepcopy(inputs)
    outputs.setdefault("apiVersion", api_version)
    outputs.setdefault("kind", kind)
    metadata = outputs.setdefault("metadata", {})
    if not metadata.get("name") and not metadata.get("generateName"):
        # The provider's auto-naming: logical name plus 8 random characters.
        metadata["name"] = f"{args.name}-{secrets.token_hex(4)}"
        metadata.setdefault("annotations", {})["pulumi.com/autonamed"] = "true"
    elif not metadata.get("name"):
        metadata["name"] = metadata["generateName"] + secrets.token_hex(3)[:5]
    namespaced = outputs["kind"] not in CLUSTER_SCOPED_KINDS
    if namespaced and not metadata.get("namespace"):
        metadata["namespace"] = "default"
    qualified = (
        f"{metadata['namespace']}/{metadata['name']}"
        if namespaced
        else metadata["name"]
    )
    return qualified, outputs


def _kubernetes_object(
    args: MockResourceArgs, inputs: dict[str, JSON]
) -> tuple[str, dict[str, JSON]]:
    """The object as the API server returns it from a create."""
    qualified, outputs = _checked_object(args, inputs)
    if outputs["kind"] == "Service":
        _fill_service(outputs, qualified)
    return qualified, outputs


def _render_object(
    args: MockResourceArgs, inputs: dict[str, JSON], folder: Path
) -> tuple[str, dict[str, JSON]]:
    """What pulumi-kubernetes does with a ``renderYamlToDirectory`` provider (provider.go ``renderYaml``,
    ``renderPathForResource``, ``Create`` @ v4.32.0): the checked object is written as YAML (keys sorted,
    as Go's JSON-to-YAML writes them) to ``0-crd/`` or ``1-manifest/``, directories 0700 and files 0600;
    its outputs are its inputs, with nothing a server would fill in."""
    qualified, obj = _checked_object(args, inputs)
    metadata = obj["metadata"]
    name = "-".join([
        re.sub("[/:]", "_", obj["apiVersion"]), obj["kind"].lower(), metadata.get("namespace") or "default",
        metadata["name"],
    ])
    crd = obj["kind"] == "CustomResourceDefinition" and obj["apiVersion"].startswith("apiextensions.k8s.io/")
    path = folder / ("0-crd" if crd else "1-manifest") / f"{name}.yaml"
    for directory in (folder / "0-crd", folder / "1-manifest"):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(obj, sort_keys=True))
    path.chmod(0o600)
    return qualified, obj


def _fill_service(service: dict[str, JSON], qualified: str) -> None:
    """Server-side Service fields: a stable fake ClusterIP and node ports."""
    spec = service.setdefault("spec", {})
    if spec.get("type") == "ExternalName":
        return
    if not spec.get("clusterIP"):
        spec["clusterIP"] = _fake_cluster_ip(qualified)
    spec.setdefault("clusterIPs", [spec["clusterIP"]])
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        for port in spec.get("ports") or []:
            port.setdefault(
                "nodePort", 30000 + _stable_int(f"{qualified}:{port.get('port')}", 2768)
            )


# --------------------------------------------------------------------------- mocks

_HANDLERS: dict[str, Handler] = {
    "tls:index/privateKey:PrivateKey": _tls_private_key,
    "tls:index/selfSignedCert:SelfSignedCert": _tls_self_signed_cert,
    "tls:index/certRequest:CertRequest": _tls_cert_request,
    "tls:index/locallySignedCert:LocallySignedCert": _tls_locally_signed_cert,
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomString:RandomString": _random_string,
    "random:index/randomId:RandomId": _random_id,
}
_PROVIDER_PACKAGES = ("kubernetes", "tls", "random")


class PlatformMocks(Mocks):
    """Mocks that act like the tls, random and kubernetes providers and record everything.

    With ``preview``, Kubernetes objects come back as pulumi-kubernetes returns a create it cannot
    preview against the API server (client-side apply, a dry run refused, an unreachable cluster): the
    inputs as they are, with an empty ID and nothing the server fills in (provider.go ``Create``,
    "cannot preview Create" @ v4.32.0). tls and random resources answer as they do in an update.
    """

    def __init__(self, preview: bool = False) -> None:
        self.preview = preview
        self.records: list[ResourceRecord] = []
        self._providers: dict[str, dict[str, JSON]] = {}
        self._lock = threading.Lock()
        # Registrations run on executor threads; the monitor hands over the
        # request's additional_secret_outputs through this thread-local.
        self._pending = threading.local()

    def expect_secret_outputs(self, names: Iterable[str]) -> None:
        self._pending.secret_outputs = frozenset(names)

    def expect_options(self, options: dict[str, JSON]) -> None:
        self._pending.options = options

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]] | None]:
        raise ProviderError(f"unexpected provider function call {args.token}")

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        secret_outputs: frozenset[str] = getattr(
            self._pending, "secret_outputs", frozenset()
        )
        secret_inputs = sorted(
            k for k, v in args.inputs.items() if rpc.is_rpc_secret(v)
        )
        inputs = normalize_numbers(unwrap_secrets(args.inputs))
        resource_id, outputs = self._dispatch(args, inputs)
        outputs = normalize_numbers(outputs)
        # The engine keeps a secret input secret in the state, and applies the SDK's additional_secret_outputs.
        secret_keys = sorted((set(secret_inputs) | secret_outputs) & outputs.keys())
        self._record(
            ResourceRecord(
                type=args.typ,
                name=args.name,
                # ReadResource (a .get()) leaves custom unset; only components send False.
                custom=args.custom is not False,
                id=resource_id,
                inputs=inputs,
                outputs=outputs,
                secret_inputs=secret_inputs,
                secret_outputs=secret_keys,
                options=dict(getattr(self._pending, "options", {})),
            )
        )
        wire = {
            k: rpc.wrap_rpc_secret(v) if k in secret_keys else v
            for k, v in outputs.items()
        }
        return resource_id, wire

    def _dispatch(
        self, args: MockResourceArgs, inputs: dict[str, JSON]
    ) -> tuple[str | None, dict[str, JSON]]:
        package = args.typ.split(":", 1)[0]
        if args.typ.startswith("pulumi:providers:"):
            if args.typ.rsplit(":", 1)[-1] not in _PROVIDER_PACKAGES:
                raise ProviderError(f"unexpected provider {args.typ}")
            # The engine gives every provider resource a random UUID as its ID.
            provider_id = str(uuid.uuid4())
            urn = getattr(self._pending, "options", {}).get("urn")
            with self._lock:
                # Resources name their provider as "<urn>::<id>".
                self._providers[f"{urn}::{provider_id}"] = inputs
            return provider_id, inputs
        if args.custom is False:
            if package in _PROVIDER_PACKAGES:
                # A provider-side component (e.g. yaml/v2 ConfigGroup) would render nothing under mocks.
                raise ProviderError(f"unsupported component resource {args.typ}")
            return None, {}
        handler = _HANDLERS.get(args.typ)
        if handler is None and package == "kubernetes":
            render_to = self._render_folder(args.provider)
            if render_to:
                return _render_object(args, inputs, Path(render_to))
            if self.preview:
                return "", _checked_object(args, inputs)[1]
            handler = _kubernetes_object
        if handler is None:
            raise ProviderError(f"unexpected resource type {args.typ} ({args.name})")
        return handler(args, inputs)

    def _render_folder(self, provider: str | None) -> str | None:
        with self._lock:
            settings = self._providers.get(provider or "", {})
        folder = settings.get("renderYamlToDirectory")
        return folder if isinstance(folder, str) and folder else None

    def _record(self, record: ResourceRecord) -> None:
        with self._lock:
            self.records.append(record)

    def by_type(self, type_token: str) -> list[ResourceRecord]:
        with self._lock:
            return [r for r in self.records if r.type == type_token]


ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


class PlatformMonitor(MockMonitor):
    """A mock monitor that honours additional_secret_outputs and captures stack outputs."""

    mocks: PlatformMocks

    def __init__(self, mocks: PlatformMocks) -> None:
        super().__init__(mocks)
        self.registered_outputs: dict[str, JSON] = {}

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        """A URN as the engine makes it: the parent's whole type chain, except the root Stack's, before the
        resource's own type (the SDK's mock keeps only the parent's last type, and the Stack's)."""
        if parent:
            parent_types = parent.split("::")[2]
            if parent_types != ROOT_STACK_TYPE:
                type_ = f"{parent_types}${type_}"
        return super().make_urn("", type_, name)

    def RegisterResource(self, request: Any) -> Any:
        self.mocks.expect_secret_outputs(request.additionalSecretOutputs)
        # Data safety and ordering live in resource options, which the mocks API does not pass on.
        self.mocks.expect_options({
            "urn": self.make_urn(request.parent, request.type, request.name),
            "parent": request.parent,
            "provider": request.provider,
            "dependencies": sorted(request.dependencies),
            "protect": request.protect,
            "retainOnDelete": request.retainOnDelete,
            "deleteBeforeReplace": request.deleteBeforeReplace,
            "ignoreChanges": sorted(request.ignoreChanges),
            "customTimeouts": {
                kind: getattr(request.customTimeouts, kind)
                for kind in ("create", "update", "delete")
                if getattr(request.customTimeouts, kind)
            },
            # What the engine matches earlier URNs against: alias specs, or plain URNs from older SDKs.
            "aliases": [
                *(json_format.MessageToDict(alias) for alias in request.aliases),
                *({"urn": urn} for urn in request.aliasURNs),
            ],
        })
        try:
            return super().RegisterResource(request)
        finally:
            self.mocks.expect_secret_outputs(())
            self.mocks.expect_options({})

    def RegisterResourceOutputs(self, request: Any) -> Any:
        # The root Stack registers the program's exports here, serialised exactly as
        # the engine would receive them (secrets still wrapped).
        self.registered_outputs[request.urn] = rpc.deserialize_properties(
            request.outputs
        )
        return super().RegisterResourceOutputs(request)
