"""Typed, validated stack configuration.

Every key the program reads is declared once in ``KEYS`` (name, type, default, description); the same
table backs ``Pulumi.yaml`` (a test keeps the two in step) and the README's configuration reference.
Bad values stop the program before any resource is declared, with one line that names the key, the
value and what is allowed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import pulumi
import pulumi.runtime.config

PROJECT = "portus"


class ConfigError(pulumi.RunError):
    """A stack config value that the platform cannot use; reported on one line, without a traceback."""

    def __init__(self, key: str, value: object, allowed: str) -> None:
        shown = "(not set)" if value is None else json.dumps(value) if not isinstance(value, str) else repr(value)
        super().__init__(f"config error: {PROJECT}:{key} = {shown}: {allowed}")
        self.key = key


class Exposure(StrEnum):
    INGRESS = "ingress"
    NODE_PORT = "nodePort"
    LOAD_BALANCER = "loadBalancer"


WORKLOADS = ("portus", "background", "registry", "database", "proxy")

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
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


@dataclass(frozen=True)
class ResourceSpec:
    """CPU/memory requests and limits of one container, as Kubernetes quantities."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def to_kubernetes(self) -> dict[str, dict[str, str]]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"cpu": self.cpu_limit, "memory": self.memory_limit},
        }


DEFAULT_RESOURCES: dict[str, ResourceSpec] = {
    # Portus (Rails + Puma) needs ~400 MiB warm; asset precompile checks at boot spike higher.
    "portus": ResourceSpec("250m", "512Mi", "2", "1536Mi"),
    "background": ResourceSpec("100m", "384Mi", "1", "1Gi"),
    "registry": ResourceSpec("100m", "128Mi", "2", "1Gi"),
    "database": ResourceSpec("250m", "512Mi", "2", "2Gi"),
    "proxy": ResourceSpec("100m", "64Mi", "2", "512Mi"),
}


@dataclass(frozen=True)
class ExposureConfig:
    mode: Exposure
    port: int
    ingress_class_name: str | None
    ingress_controller_namespace: str | None


@dataclass(frozen=True)
class StorageConfig:
    storage_class: str | None
    registry_size: str
    registry_existing_claim: str | None
    database_size: str
    keep_on_destroy: bool


@dataclass(frozen=True)
class Images:
    portus: str
    registry: str
    database: str
    proxy: str


@dataclass(frozen=True)
class PlatformConfig:
    namespace: str
    host: str
    registry_host: str
    exposure: ExposureConfig
    storage: StorageConfig
    images: Images
    resources: Mapping[str, ResourceSpec]
    portus_replicas: int
    proxy_replicas: int
    admin_username: str
    admin_email: str
    log_level: str
    signup_enabled: bool
    cluster_domain: str

    def _with_port(self, name: str) -> str:
        return name if self.exposure.port == 443 else f"{name}:{self.exposure.port}"

    @property
    def portal_address(self) -> str:
        """``host[:port]`` of the web UI and token service, port omitted when it is 443."""
        return self._with_port(self.host)

    @property
    def registry_address(self) -> str:
        """``host[:port]`` that Docker clients push to: the registry's token ``service`` and Portus's
        ``external_hostname`` (the exact string Portus compares)."""
        return self._with_port(self.registry_host)

    @property
    def portal_url(self) -> str:
        return f"https://{self.portal_address}"

    @property
    def public_hosts(self) -> list[str]:
        return list(dict.fromkeys([self.host, self.registry_host]))


# --- parsers: each takes the raw value and returns the typed one or raises ValueError(allowed) ----


def _as_str(raw: Any) -> str:
    if not isinstance(raw, str) or not raw:
        raise ValueError("a non-empty string")
    return raw


def _as_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError("an integer")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, str) and re.fullmatch(r"[+-]?\d+", raw.strip()):
        return int(raw)
    raise ValueError("an integer")


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise ValueError("true or false")


def _as_object(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError:
            raise ValueError("an object") from None
    if not isinstance(raw, dict):
        raise ValueError("an object")
    return raw


def _dns_label(raw: Any) -> str:
    value = _as_str(raw)
    if not _DNS_LABEL.match(value):
        raise ValueError("a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters")
    return value


def _host_name(raw: Any) -> str:
    value = _as_str(raw)
    if not _HOST_NAME.match(value) or value.replace(".", "").isdigit():
        raise ValueError("a DNS host name without scheme, port or path, e.g. registry.example.com")
    return value


def _one_of(*allowed: str) -> Callable[[Any], str]:
    def parse(raw: Any) -> str:
        if raw not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return str(raw)

    return parse


def _int_between(low: int, high: int) -> Callable[[Any], int]:
    def parse(raw: Any) -> int:
        value = _as_int(raw)
        if not low <= value <= high:
            raise ValueError(f"an integer from {low} to {high}")
        return value

    return parse


def _byte_quantity(raw: Any) -> str:
    value = _as_str(raw) if not isinstance(raw, int) or isinstance(raw, bool) else str(raw)
    match = _BYTES.match(value)
    if not match or float(match.group(1)) * _BYTE_FACTORS[match.group(2)] < 1:
        raise ValueError("a positive Kubernetes quantity such as 512Mi or 20Gi")
    return value


def _cpu_quantity(raw: Any) -> str:
    value = str(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) else _as_str(raw)
    match = _CPU.match(value)
    if not match or float(match.group(1)) <= 0:
        raise ValueError("a positive CPU quantity such as 250m or 2")
    return value


def _pinned_image(raw: Any) -> str:
    value = _as_str(raw)
    match = _IMAGE.match(value)
    if not match or (match.group("tag") in (None, "latest") and "@sha256:" not in value):
        raise ValueError("an image reference pinned to a release tag or digest (not 'latest'), e.g. registry:2.8.3")
    return value


def _email(raw: Any) -> str:
    value = _as_str(raw)
    if not _EMAIL.match(value):
        raise ValueError("an e-mail address such as admin@example.com")
    return value


def _portus_username(raw: Any) -> str:
    value = _as_str(raw)
    if not 4 <= len(value) <= 30 or not _PORTUS_USERNAME.match(value) or value == "portus":
        raise ValueError(
            "4 to 30 lower-case letters, digits, '.', '_' or '-', not 'portus' (reserved by Portus)"
        )
    return value


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(raw: Any) -> Any:
        return None if raw in (None, "") else parse(raw)

    return parse_optional


@dataclass(frozen=True)
class Key:
    """One stack config key: how it is parsed, its default, its type in Pulumi.yaml, its meaning."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    yaml_type: str | None
    description: str


_REQUIRED = object()

KEYS: tuple[Key, ...] = (
    Key("host", _host_name, _REQUIRED, "string",
        "Public DNS name of the Portus web UI and token service (and of the registry unless registryHost is set)."),
    Key("registryHost", _optional(_host_name), None, "string",
        "Public DNS name Docker clients push to; defaults to host."),
    Key("adminEmail", _email, _REQUIRED, "string", "E-mail of the first Portus administrator."),
    Key("adminUsername", _portus_username, "admin", "string", "User name of the first Portus administrator."),
    Key("namespace", _dns_label, "portus", "string", "Kubernetes namespace the platform is deployed into."),
    Key("exposure", _one_of(*(mode.value for mode in Exposure)), Exposure.INGRESS.value, "string",
        "How clients outside the cluster reach the platform: ingress, nodePort or loadBalancer."),
    Key("publicPort", _int_between(1, 65535), None, "integer",
        "Port clients use: 443 by default; for nodePort it is the node port (30000-32767, default 30443)."),
    Key("ingressClassName", _optional(_dns_label), None, "string",
        "IngressClass of the Ingress (exposure=ingress only); default nginx."),
    Key("ingressControllerNamespace", _optional(_dns_label), None, "string",
        "Namespace of the ingress controller, allowed through the NetworkPolicy (exposure=ingress only); "
        "default ingress-nginx."),
    Key("storageClass", _optional(_dns_label), None, "string",
        "StorageClass of the registry and database volumes; the cluster default when unset."),
    Key("registryStorageSize", _optional(_byte_quantity), None, "string",
        "Size of the registry's image store; default 20Gi."),
    Key("registryExistingClaim", _optional(_dns_label), None, "string",
        "Use this existing PersistentVolumeClaim for the registry instead of creating one."),
    Key("databaseStorageSize", _byte_quantity, "8Gi", "string", "Size of the MariaDB volume."),
    Key("keepDataOnDestroy", _as_bool, True, "boolean",
        "Keep the registry and database volumes (and the StatefulSet's claims) on pulumi destroy."),
    Key("portusImage", _pinned_image, "opensuse/portus:2.4.3", "string", "Portus web and background image."),
    Key("registryImage", _pinned_image, "registry:2.8.3", "string", "Docker Distribution registry image."),
    Key("databaseImage", _pinned_image, "mariadb:10.11.10", "string", "MariaDB image."),
    Key("proxyImage", _pinned_image, "nginxinc/nginx-unprivileged:1.27.3-alpine", "string",
        "Unprivileged nginx image of the reverse proxy."),
    Key("portusReplicas", _int_between(1, 10), 1, "integer", "Replicas of the Portus web Deployment."),
    Key("proxyReplicas", _int_between(1, 10), 2, "integer", "Replicas of the nginx proxy Deployment."),
    Key("resources", _as_object, {}, None,
        "Per-workload overrides of CPU/memory requests and limits: "
        "{portus|background|registry|database|proxy: {requests: {cpu, memory}, limits: {cpu, memory}}}."),
    Key("logLevel", _one_of("debug", "info", "warn", "error"), "info", "string",
        "Log level of Portus, the registry and the proxy."),
    Key("signupEnabled", _as_bool, False, "boolean", "Let anyone create a Portus account from the sign-in page."),
    Key("clusterDomain", _host_name, "cluster.local", "string", "DNS domain of the cluster's Services."),
)


_RESOURCE_FIELDS = {
    ("requests", "cpu"): "cpu_request", ("requests", "memory"): "memory_request",
    ("limits", "cpu"): "cpu_limit", ("limits", "memory"): "memory_limit",
}


def _parse_resources(raw: dict[str, Any]) -> dict[str, ResourceSpec]:
    resources = dict(DEFAULT_RESOURCES)
    for workload, override in raw.items():
        path = f"resources.{workload}"
        if workload not in WORKLOADS:
            raise ConfigError(path, override, "workload must be one of " + ", ".join(WORKLOADS))
        if not isinstance(override, dict) or set(override) - {"requests", "limits"}:
            raise ConfigError(path, override, "an object with 'requests' and/or 'limits'")
        changes: dict[str, str] = {}
        for kind, values in override.items():
            if not isinstance(values, dict) or set(values) - {"cpu", "memory"}:
                raise ConfigError(f"{path}.{kind}", values, "an object with 'cpu' and/or 'memory'")
            for resource, value in values.items():
                parse = _cpu_quantity if resource == "cpu" else _byte_quantity
                try:
                    changes[_RESOURCE_FIELDS[kind, resource]] = parse(value)
                except ValueError as allowed:
                    raise ConfigError(f"{path}.{kind}.{resource}", value, str(allowed)) from None
        resources[workload] = replace(resources[workload], **changes)
    for workload, spec in resources.items():
        for resource, request, limit in (
            ("cpu", spec.cpu_request, spec.cpu_limit), ("memory", spec.memory_request, spec.memory_limit),
        ):
            if _quantity_value(request) > _quantity_value(limit):
                raise ConfigError(
                    f"resources.{workload}.requests.{resource}", request, f"must not exceed the limit {limit}"
                )
    return resources


def _quantity_value(quantity: str) -> float:
    cpu = _CPU.match(quantity)
    if cpu:
        return float(cpu.group(1)) / (1000 if cpu.group(2) else 1)
    match = _BYTES.match(quantity)
    assert match, quantity
    return float(match.group(1)) * _BYTE_FACTORS[match.group(2)]


def parse_config(raw: Mapping[str, Any]) -> PlatformConfig:
    """Builds the typed config from raw values keyed by config key (without the project prefix)."""
    known = {key.name: key for key in KEYS}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(unknown[0], raw[unknown[0]], "unknown key; known keys are " + ", ".join(sorted(known)))

    values: dict[str, Any] = {}
    for key in KEYS:
        value = raw.get(key.name)
        if value is None or value == "":
            if key.default is _REQUIRED:
                raise ConfigError(key.name, None, "required; " + key.description)
            values[key.name] = key.default
            continue
        try:
            values[key.name] = key.parse(value)
        except ValueError as allowed:
            raise ConfigError(key.name, value, str(allowed)) from None

    mode = Exposure(values["exposure"])
    exposure = _parse_exposure(mode, values, raw)
    registry_existing_claim = values["registryExistingClaim"]
    if registry_existing_claim and values["registryStorageSize"]:
        raise ConfigError(
            "registryStorageSize", values["registryStorageSize"],
            "conflicts with registryExistingClaim: the existing claim's size is used; set only one",
        )
    return PlatformConfig(
        namespace=values["namespace"],
        host=values["host"],
        registry_host=values["registryHost"] or values["host"],
        exposure=exposure,
        storage=StorageConfig(
            storage_class=values["storageClass"],
            registry_size=values["registryStorageSize"] or "20Gi",
            registry_existing_claim=registry_existing_claim,
            database_size=values["databaseStorageSize"],
            keep_on_destroy=values["keepDataOnDestroy"],
        ),
        images=Images(
            portus=values["portusImage"], registry=values["registryImage"],
            database=values["databaseImage"], proxy=values["proxyImage"],
        ),
        resources=_parse_resources(values["resources"]),
        portus_replicas=values["portusReplicas"],
        proxy_replicas=values["proxyReplicas"],
        admin_username=values["adminUsername"],
        admin_email=values["adminEmail"],
        log_level=values["logLevel"],
        signup_enabled=values["signupEnabled"],
        cluster_domain=values["clusterDomain"],
    )


def _parse_exposure(mode: Exposure, values: dict[str, Any], raw: Mapping[str, Any]) -> ExposureConfig:
    ingress_only = ("ingressClassName", "ingressControllerNamespace")
    if mode is not Exposure.INGRESS:
        for name in ingress_only:
            if values[name]:
                raise ConfigError(name, values[name], f"only applies to exposure=ingress, not exposure={mode.value}")
        port = values["publicPort"]
        if mode is Exposure.NODE_PORT:
            port = 30443 if port is None else port
            if not 30000 <= port <= 32767:
                raise ConfigError(
                    "publicPort", raw.get("publicPort"),
                    "with exposure=nodePort it is the node port: an integer from 30000 to 32767",
                )
        return ExposureConfig(mode, 443 if port is None else port, None, None)
    return ExposureConfig(
        mode,
        443 if values["publicPort"] is None else values["publicPort"],
        values["ingressClassName"] or "nginx",
        values["ingressControllerNamespace"] or "ingress-nginx",
    )


def load_config() -> PlatformConfig:
    """Reads this project's keys from the stack config the Pulumi engine passed to the program."""
    prefix = f"{PROJECT}:"
    # The engine hands all config to the program; keys of other namespaces (providers') are not ours.
    settings = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    raw = {key[len(prefix):]: value for key, value in settings.items() if key.startswith(prefix)}
    return parse_config(raw)
