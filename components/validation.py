"""Parsing and checking of stack config values, shared by every part that reads its own settings.

Each parser takes the raw value (as the Pulumi CLI hands it over: strings, or JSON for objects) and
returns the typed value or raises ``ValueError`` with what is allowed; ``ConfigError`` turns that into
the one line a user sees, naming the key and the value.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pulumi

PROJECT = "portus"
T = TypeVar("T")


class ConfigError(pulumi.RunError):
    """A stack config value that the platform cannot use; reported on one line, without a traceback."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        shown = "(not set)" if value is None else json.dumps(value) if not isinstance(value, str) else repr(value)
        super().__init__(f"config error: {PROJECT}:{key} = {shown}: {allowed}")
        self.key = key


_DNS_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_EMAIL = re.compile(r"^[^@\s]+@[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$", re.IGNORECASE)
# Portus 2.4 user names: lower-case letters, digits and separators, 4 to 30 characters (User model).
_PORTUS_USERNAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_BYTES = re.compile(r"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_CPU = re.compile(r"^(\d+(?:\.\d+)?)(m)?$")
# registry/repository[:tag][@sha256:digest] with a tag or digest that pins a release.
_IMAGE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::\d+)?(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@sha256:[a-f0-9]{64})?$"
)
_BYTE_FACTORS = {
    None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}


# --- parsers: each takes the raw value and returns the typed one or raises ValueError(allowed) ----


def as_str(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValueError("a non-empty string")
    return raw


def matching(pattern: str | re.Pattern[str], allowed: str,
             text: Callable[[Any], str] = as_str) -> Callable[[Any], str]:
    """A parser of text (read by ``text``) that ``pattern`` must match whole; ``allowed`` says what may."""
    compiled = re.compile(pattern)

    def parse(raw: Any) -> str:
        value = text(raw)
        if not compiled.fullmatch(value):
            raise ValueError(allowed)
        return value

    return parse


def as_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
        return int(raw)
    raise ValueError("an integer")


def as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ValueError("true or false")


def as_object(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("an object") from None
    if not isinstance(raw, dict):
        raise ValueError("an object")
    return raw


def dns_label(raw: Any) -> str:
    value = as_str(raw)
    if not _DNS_LABEL.fullmatch(value):
        raise ValueError("a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters")
    return value


def ip_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``value`` as an IP address written the usual way, or None."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return None
    return address if str(address) == value else None


def _bare_host(value: str) -> str:
    """The host part of something with a scheme, port or path, for a suggestion in a message."""
    return (urlsplit(value if "://" in value else f"//{value}").hostname or "").lower() or "registry.example.com"


def _host_name_problem(value: str) -> str | None:
    """What a DNS host name must be, naming the first rule ``value`` breaks; None if it is one."""
    if "://" in value:
        return f"a bare DNS name, without a scheme: {_bare_host(value)}"
    if "/" in value:
        return f"a bare DNS name, without a path: {_bare_host(value)}"
    if ":" in value:
        return f"a bare DNS name, without a port: {_bare_host(value)} (the port is publicPort)"
    if value != value.lower():
        return f"a DNS name in lower case: {value.lower()}"
    if bad := sorted(set(re.sub(r"[a-z0-9.-]", "", value))):
        return f"a DNS name of letters a-z, digits, '-' and '.' only: {', '.join(map(repr, bad))} is not allowed"
    if len(value) > 253:
        return "a DNS name of at most 253 characters"
    labels = value.split(".")
    if "" in labels:
        return "a DNS name without empty labels: no '..', and no '.' at either end"
    for label in labels:
        if len(label) > 63:
            return f"a DNS name whose labels have at most 63 characters: {label[:12]}... has {len(label)}"
        if not _DNS_LABEL.fullmatch(label):
            return f"a DNS name whose labels start and end with a letter or digit: {label!r}"
    if all(label.isdigit() for label in labels):
        return "a valid IPv4 address: four numbers from 0 to 255, e.g. 192.168.1.10"
    return None


def host_name(raw: Any) -> str:
    """A DNS host name, never an IP address."""
    value = as_str(raw)
    if ip_address(value):
        raise ValueError("a DNS name, not an IP address")
    if problem := _host_name_problem(value):
        raise ValueError(problem)
    return value


def public_host(raw: Any) -> str:
    """A DNS host name or an IPv4 address (the exposure decides whether an address may be used)."""
    value = as_str(raw)
    address = ip_address(value)
    if address and address.version != 4:
        raise ValueError("a DNS name or an IPv4 address; IPv6 addresses are not supported")
    if not address and (problem := _host_name_problem(value)):
        raise ValueError(problem)
    return value


def one_of(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return str(raw)

    return parse


def int_between(low: int, high: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        try:
            value: int | None = as_int(raw)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise ValueError(f"an integer from {low} to {high}")
        return value

    return parse


def byte_quantity(raw: Any) -> str:
    value = as_str(raw) if not isinstance(raw, int) or isinstance(raw, bool) else str(raw)
    match = _BYTES.fullmatch(value)
    if not match or float(match.group(1)) * _BYTE_FACTORS[match.group(2)] < 1:
        raise ValueError("a positive Kubernetes quantity such as 512Mi or 20Gi")
    return value


def cpu_quantity(raw: Any) -> str:
    value = str(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else as_str(raw)
    match = _CPU.fullmatch(value)
    if not match or float(match.group(1)) <= 0:
        raise ValueError("a positive CPU quantity such as 250m or 2")
    return value


def pinned_image(raw: Any) -> str:
    value = as_str(raw)
    match = _IMAGE.fullmatch(value)
    if not match or (match.group("tag") in (None, "latest") and "@sha256:" not in value):
        raise ValueError("an image reference pinned to a release tag or digest (not 'latest'), e.g. registry:2.8.3")
    return value


def email(raw: Any) -> str:
    value = as_str(raw)
    if not _EMAIL.fullmatch(value):
        raise ValueError("an e-mail address such as admin@example.com")
    return value


def portus_username(raw: Any) -> str:
    value = as_str(raw)
    if not 4 <= len(value) <= 30 or not _PORTUS_USERNAME.fullmatch(value) or value == "portus":
        raise ValueError(
            "4 to 30 lower-case letters, digits, '.', '_' or '-', not 'portus' (reserved by Portus)"
        )
    return value


def folder(raw: Any) -> str:
    """A directory path as the provider receives it: it neither expands ``~`` nor variables."""
    value = as_str(raw)
    if value.startswith("~") or "$" in value or any(c in value for c in "\0\n\r"):
        raise ValueError("a folder path, absolute or relative to the project directory (no ~ or $VARIABLES)")
    return value


def optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(raw: Any) -> Any:
        return None if raw in (None, "") else parse(raw)

    return parse_optional


def quantity_value(quantity: str) -> float:
    cpu = _CPU.fullmatch(quantity)
    if cpu:
        return float(cpu.group(1)) / (1000 if cpu.group(2) else 1)
    match = _BYTES.fullmatch(quantity)
    assert match, quantity
    return float(match.group(1)) * _BYTE_FACTORS[match.group(2)]


_CRON_ITEM = r"(\*|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?"
_CRON_FIELD = re.compile(rf"^{_CRON_ITEM}(,{_CRON_ITEM})*$")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def cron_schedule(raw: Any) -> str:
    """A Kubernetes CronJob schedule: five cron fields or a macro such as @daily (no TZ= prefix: the
    CronJob's timeZone says which zone)."""
    value = as_str(raw).strip()
    fields = value.split()
    if value not in _CRON_MACROS and (len(fields) != 5 or not all(_CRON_FIELD.fullmatch(f) for f in fields)):
        raise ValueError("a cron schedule of five fields (minute hour day month weekday), e.g. '15 3 * * *', or @daily")
    return " ".join(fields) if len(fields) == 5 else value


def port(raw: Any) -> int:
    return int_between(1, 65535)(raw)


def object_name(raw: Any) -> str:
    """The name of a Kubernetes object such as a Secret (a DNS-1123 subdomain)."""
    value = as_str(raw)
    if not _DNS_SUBDOMAIN.fullmatch(value):
        raise ValueError("a Kubernetes object name: lower-case letters, digits, '-' and '.'")
    return value


def network_host(raw: Any) -> str:
    """A server's DNS name or IP address."""
    value = as_str(raw)
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(value))
    if problem := _host_name_problem(value):
        raise ValueError(f"{problem}, or an IP address")
    return value


def host_port(raw: Any) -> tuple[str, int]:
    """``host:port`` (an IPv6 address in brackets)."""
    value = as_str(raw)
    host, sep, number = value.rpartition(":")
    allowed = "host:port, e.g. redis.cache.svc.cluster.local:6379"
    if not sep or not number.isdigit():
        raise ValueError(allowed)
    try:
        return network_host(host.removeprefix("[").removesuffix("]")), port(number)
    except ValueError:
        raise ValueError(allowed) from None


def cidr_list(raw: Any) -> tuple[str, ...]:
    """A list of address ranges such as ``["10.20.0.0/16"]`` (a comma-separated string also works)."""
    items = raw.split(",") if isinstance(raw, str) else raw
    allowed = "a list of address ranges in CIDR notation, e.g. [10.20.0.0/16]"
    if not isinstance(items, list) or not items:
        raise ValueError(allowed)
    try:
        return tuple(str(ipaddress.ip_network(str(item).strip(), strict=True)) for item in items)
    except ValueError:
        raise ValueError(allowed) from None


def byte_count(low: int, high: int) -> Callable[[Any], int]:
    """A number of bytes, given as an integer or a quantity such as ``10Mi``."""
    def parse(raw: Any) -> int:
        text = str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else as_str(raw)
        match = _BYTES.fullmatch(text)
        value = int(float(match.group(1)) * _BYTE_FACTORS[match.group(2)]) if match else -1
        if not low <= value <= high:
            raise ValueError(f"a number of bytes from {low} to {high} (an integer, or a quantity such as 10Mi)")
        return value

    return parse


@dataclass(frozen=True)
class SecretText:
    """A credential taken from stack config: never shown in messages or reprs, declared as a secret."""

    value: str = field(repr=False)

    def output(self) -> pulumi.Output[str]:
        return pulumi.Output.secret(self.value)


def secret_text(raw: Any) -> SecretText:
    return SecretText(as_str(raw))


class ObjectValue:
    """The fields of an object-valued key (``portus:key: {field: ...}``), read one by one; a bad or
    unknown field is a ConfigError naming ``key.field``, and a secret field's value is never shown."""

    def __init__(self, key: str, raw: Any, fields: Iterable[str], secrets: Iterable[str] = ()) -> None:
        self.key = key
        self.fields = tuple(fields)
        self.secrets = frozenset(secrets)
        """Fields holding credentials: never shown, and neither is a field the program does not know in an
        object that may hold them (a misspelled credential, say)."""
        try:
            self.raw = as_object(raw)
        except ValueError as allowed:
            raise ConfigError(key, "[secret]" if self.secrets else raw, str(allowed)) from None
        unknown = sorted(set(self.raw) - set(self.fields))
        if unknown:
            raise self.error(unknown[0], "unknown field; known fields are " + ", ".join(self.fields),
                             secret=bool(self.secrets))

    def error(self, name: str, allowed: str, secret: bool = False) -> ConfigError:
        value = self.raw.get(name)
        hidden = secret or name in self.secrets
        return ConfigError(f"{self.key}.{name}", "[secret]" if hidden and value is not None else value, allowed)

    def has(self, name: str) -> bool:
        return self.raw.get(name) not in (None, "")

    def get(self, name: str, parse: Callable[[Any], T], default: T, secret: bool = False) -> T:
        """The parsed field, or ``default`` when it is not set."""
        return self._parse(name, parse, secret) if self.has(name) else default

    def require(self, name: str, parse: Callable[[Any], T], why: str = "required", secret: bool = False) -> T:
        """The parsed field; not set is a ConfigError that says ``why`` it is needed."""
        if not self.has(name):
            raise self.error(name, why)
        return self._parse(name, parse, secret)

    def check(self, condition: bool, name: str, allowed: str) -> None:
        """A rule between fields: unless ``condition`` holds, a ConfigError naming ``key.name``."""
        if not condition:
            raise self.error(name, allowed)

    def _parse(self, name: str, parse: Callable[[Any], T], secret: bool) -> T:
        try:
            return parse(self.raw[name])
        except ValueError as allowed:
            raise self.error(name, str(allowed), secret) from None



_KIND = re.compile(r"^[A-Z][A-Za-z0-9]{0,62}$")
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\s*(.*?)\s*-----END \1-----", re.DOTALL)
# Go's time.ParseDuration, which Kubernetes' metav1.Duration fields use (no sign: only lengths of time).
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|μs|ms|s|m|h))+$")
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def kind_name(raw: Any) -> str:
    value = as_str(raw)
    if not _KIND.fullmatch(value):
        raise ValueError("a Kubernetes kind, e.g. ClusterIssuer")
    return value


def pem_certificates(raw: Any) -> str:
    """One or more PEM certificates (a CA and its intermediates), and never a private key; written as PEM
    is, however the value was indented or wrapped in the stack file."""
    value = as_str(raw).strip()
    blocks = _PEM_BLOCK.findall(value)
    if any("PRIVATE KEY" in label for label, _ in blocks) or "PRIVATE KEY" in value:
        raise ValueError("this is a private key: give the CA's certificate (-----BEGIN CERTIFICATE-----) only")
    try:
        ders = [base64.b64decode("".join(body.split()), validate=True) for label, body in blocks
                if label == "CERTIFICATE"]
    except (binascii.Error, ValueError):
        ders = []
    if (not blocks or len(ders) != len(blocks) or not all(der[:1] == b"\x30" for der in ders)
            or _PEM_BLOCK.sub("", value).strip()):
        raise ValueError("PEM certificates (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)")
    certificates = []
    for der in ders:
        body = base64.b64encode(der).decode()
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        certificates.append("\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----"]))
    return "\n".join(certificates) + "\n"


def go_duration(raw: Any) -> str:
    """A length of time as Kubernetes and cert-manager write it: 2160h, 90m, 1h30m."""
    value = as_str(raw)
    if not _GO_DURATION.fullmatch(value):
        raise ValueError("a duration such as 2160h, 720h or 90m (units h, m, s)")
    return value


def duration_seconds(duration: str) -> float:
    return sum(float(number) * _GO_UNITS[unit] for number, unit in _GO_DURATION_PART.findall(duration))
