"""Typed, validated stack configuration.

Every key the program reads is declared once in ``KEYS`` (name, type, default, description); the same
table backs ``Pulumi.yaml`` (a test keeps the two in step) and the README's configuration reference.
Bad values stop the program before any resource is declared, with one line that names the key, the
value and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import pulumi
import pulumi.runtime.config

from components.database.backup import BackupConfig
from components.database.endpoint import (
    ADAPTERS,
    DEFAULT_PORTS,
    DatabaseEndpoint,
    ExternalDatabase,
    InternalDatabase,
)
from components.edge.certificate import (
    CERT_MANAGER_DEFAULT_DURATION,
    CERT_MANAGER_GROUP,
    CERT_MANAGER_SECRET,
    PLATFORM_SECRET,
    CertManagerCertificate,
    EdgeCertificateSource,
    ExistingSecret,
    GeneratedCertificate,
    IssuerRef,
)
from components.edge.exposure import Edge, Exposure, IngressEdge, ProxyEdge
from components.kube import ResourceSpec
from components.monitoring import MetricsConfig
from components.node_trust import NodeTrustConfig
from components.portus import CATALOG_SYNC
from components.portus.settings import Email, Ldap, OAuth, Permissions, PortusSettings, TagRetention
from components.registry.cache import BlobDescriptorCache, InMemoryCache, RedisCache
from components.registry.storage import (
    ACCESS_MODES,
    S3_MAX_CHUNK,
    S3_MIN_CHUNK,
    FilesystemStorage,
    S3Storage,
    StorageBackend,
)
from components.validation import (
    PROJECT,
    ConfigError,
    ObjectValue,
    as_bool,
    as_object,
    as_str,
    byte_count,
    byte_quantity,
    cidr_list,
    cpu_quantity,
    cron_schedule,
    dns_label,
    duration_seconds,
    email,
    folder,
    go_duration,
    host_name,
    host_port,
    int_between,
    ip_address,
    kind_name,
    matching,
    network_host,
    object_name,
    one_of,
    optional,
    pem_certificates,
    pinned_image,
    port,
    portus_username,
    public_host,
    quantity_value,
    secret_text,
)

WORKLOADS = ("portus", "background", "registry", "database", "proxy")


DEFAULT_RESOURCES: dict[str, ResourceSpec] = {
    # Portus (Rails + Puma) needs ~400 MiB warm; asset precompile checks at boot spike higher.
    "portus": ResourceSpec("250m", "512Mi", "2", "1536Mi"),
    "background": ResourceSpec("100m", "384Mi", "1", "1Gi"),
    "registry": ResourceSpec("100m", "128Mi", "2", "1Gi"),
    "database": ResourceSpec("250m", "512Mi", "2", "2Gi"),
    "proxy": ResourceSpec("100m", "64Mi", "2", "512Mi"),
}

@dataclass(frozen=True)
class StorageConfig:
    storage_class: str | None
    """StorageClass of every claim the platform creates; None for the cluster's default."""
    registry: StorageBackend
    database_size: str
    keep_on_destroy: bool
    adopt_existing: bool
    """Take over the namespace, claims and StatefulSet of these names when they already exist."""


@dataclass(frozen=True)
class Images:
    portus: str
    registry: str
    database: str
    proxy: str
    proxy_exporter: str


@dataclass(frozen=True)
class PlatformConfig:
    namespace: str
    host: str
    registry_host: str
    exposure: Edge
    storage: StorageConfig
    images: Images
    resources: Mapping[str, ResourceSpec]
    database: DatabaseEndpoint
    registry_cache: BlobDescriptorCache
    registry_replicas: int
    portus_replicas: int
    proxy_replicas: int
    admin_username: str
    admin_email: str
    log_level: str
    signup_enabled: bool
    cluster_domain: str
    render_yaml_to: str | None
    """Write the objects as YAML into this folder instead of deploying them."""
    catalog_sync: str
    backup: BackupConfig
    metrics: MetricsConfig
    portus_settings: PortusSettings
    tls: EdgeCertificateSource
    """Where the edge certificate comes from."""
    node_trust: NodeTrustConfig

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


@dataclass(frozen=True)
class Key:
    """One stack config key: how it is parsed, its default, its type, its meaning.

    Pulumi.yaml declares the key's description and default but no ``type``: the CLI would reject a
    mistyped value with its own message before the program runs, while ``parse`` names the key, the
    value and what is allowed. ``value_type`` is the type the README shows."""

    name: str
    parse: Callable[[Any], Any]
    default: Any
    value_type: str | None
    description: str
    holds_secrets: bool = False
    """An object that may carry credentials (``pulumi config set --secret --path``): never shown."""


_REQUIRED = object()
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

KEYS: tuple[Key, ...] = (
    Key("host", public_host, _REQUIRED, "string",
        "Public DNS name (or, with nodePort or loadBalancer, IPv4 address) of the Portus web UI and token service "
        "(and of the registry unless registryHost is set)."),
    Key("registryHost", optional(public_host), None, "string",
        "Public DNS name or IPv4 address Docker clients push to; defaults to host."),
    Key("adminEmail", email, _REQUIRED, "string", "E-mail of the first Portus administrator."),
    Key("adminUsername", portus_username, "admin", "string", "User name of the first Portus administrator."),
    Key("namespace", dns_label, "portus", "string", "Kubernetes namespace the platform is deployed into."),
    Key("exposure", one_of(*(mode.value for mode in Exposure)), Exposure.INGRESS.value, "string",
        "How clients outside the cluster reach the platform: ingress, nodePort or loadBalancer."),
    Key("publicPort", int_between(1, 65535), None, "integer",
        "Port clients use: 443 by default; for nodePort it is the node port (30000-32767, default 30443)."),
    Key("ingressClassName", optional(dns_label), None, "string",
        "IngressClass of the Ingresses (exposure=ingress only); default nginx."),
    Key("ingressControllerNamespace", optional(dns_label), None, "string",
        "Namespace of the ingress controller, allowed through the NetworkPolicy (exposure=ingress only); "
        "default ingress-nginx."),
    Key("storageClass", optional(dns_label), None, "string",
        "StorageClass of the registry and database volumes; the cluster default when unset."),
    Key("registryStorageSize", optional(byte_quantity), None, "string",
        "Size of the registry's image store; default 20Gi."),
    Key("registryExistingClaim", optional(dns_label), None, "string",
        "Use this existing PersistentVolumeClaim for the registry instead of creating one."),
    Key("registryStorage", as_object, {"type": "filesystem"}, None,
        "Where the registry keeps images: {type: filesystem, accessMode?} (a claim) or {type: s3, bucket, "
        "region, regionEndpoint?, rootDirectory?, secure?, chunkSize?, credentialsSecret?, accessKey?, "
        "secretKey?, redirect?, cidrs?} (object storage).", holds_secrets=True),
    Key("registryReplicas", int_between(1, 20), 1, "integer",
        "Replicas of the registry; more than 1 needs registryStorage type s3 or accessMode ReadWriteMany."),
    Key("registryCache", as_object, {"type": "inmemory"}, None,
        "The registry's blob-descriptor cache: {type: inmemory} (per pod) or {type: redis, address: host:port, "
        "passwordSecret?, password?, db?, cidrs?} (shared).", holds_secrets=True),
    Key("databaseStorageSize", byte_quantity, "8Gi", "string",
        "Size of the MariaDB volume when its claim is created; grow the claim itself later."),
    Key("database", as_object, {"type": "internal"}, None,
        "Portus's database: {type: internal} (MariaDB in the namespace) or {type: external, adapter: "
        "mysql2|postgresql, host, port?, name, username, passwordSecret?, password?, cidrs?}.", holds_secrets=True),
    Key("keepDataOnDestroy", as_bool, True, "boolean",
        "Keep the registry and database volumes (and the StatefulSet's claims) on pulumi destroy."),
    Key("portusImage", pinned_image, "opensuse/portus:2.4.3", "string", "Portus web and background image."),
    Key("registryImage", pinned_image, "registry:2.8.3", "string", "Docker Distribution registry image."),
    Key("databaseImage", pinned_image, "mariadb:10.11.10", "string", "MariaDB image."),
    Key("proxyImage", pinned_image, "nginxinc/nginx-unprivileged:1.27.3-alpine", "string",
        "Unprivileged nginx image of the reverse proxy (exposure=nodePort or loadBalancer)."),
    Key("proxyExporterImage", pinned_image, "nginx/nginx-prometheus-exporter:1.4.0", "string",
        "Image of the proxy's Prometheus exporter sidecar (nginx stub_status to Prometheus metrics;"
        " exposure=nodePort or loadBalancer)."),
    Key("portusReplicas", int_between(1, 10), 1, "integer", "Replicas of the Portus web Deployment."),
    Key("proxyReplicas", int_between(1, 10), 2, "integer",
        "Replicas of the nginx proxy Deployment (exposure=nodePort or loadBalancer)."),
    Key("resources", as_object, {}, None,
        "Per-workload overrides of CPU/memory requests and limits: "
        "{portus|background|registry|database|proxy: {requests: {cpu, memory}, limits: {cpu, memory}}}."),
    Key("logLevel", one_of("debug", "info", "warn", "error"), "info", "string",
        "Log level of Portus, the registry and the proxy."),
    Key("signupEnabled", as_bool, False, "boolean", "Let anyone create a Portus account from the sign-in page."),
    Key("clusterDomain", host_name, "cluster.local", "string", "DNS domain of the cluster's Services."),
    Key("adoptExisting", as_bool, False, "boolean",
        "Take over the namespace, registry claim and MariaDB StatefulSet if they already exist (data an earlier "
        "pulumi destroy kept); while on, destroy deletes none of them."),
    Key("renderYamlTo", optional(folder), None, "string",
        "Write every Kubernetes object as YAML into this folder (relative to the project) instead of deploying "
        "it; Secrets are written in plain text."),
    Key("catalogSync", one_of(*CATALOG_SYNC), "update", "string",
        "How Portus's background worker syncs the registry catalog into the UI: update (add what push events "
        "missed, e.g. OCI images), update-delete (also remove what is gone), initial (once, on an empty "
        "database) or disabled."),
    Key("backup", as_object, {}, None,
        "Scheduled dumps of the internal database: {enabled (default true with the internal database), "
        "schedule (cron, UTC; default '15 3 * * *'), retain (default 7), storageSize (default 10Gi), "
        "storageClass (default storageClass)}."),
    Key("metrics", as_object, {}, None,
        "Prometheus Operator objects: {serviceMonitor (default false): ServiceMonitors for the registry and the "
        "proxy (where it runs) and a PrometheusRule, namespace (default monitoring): where Prometheus runs, "
        "allowed to scrape, labels: extra labels for the Prometheus selector}."),
    Key("ldap", as_object, None, None,
        "Sign in against an LDAP directory (Portus's ldap section): {hostname, port, encryption: {method, ca},"
        " base, filter, uid, authentication: {bindDn, password}, guessEmail: {enabled, attr}, cidrs}."),
    Key("oidc", as_object, None, None,
        "Sign-in providers and local login (Portus's oauth section): {localLogin, openId, googleOauth2, github,"
        " gitlab, bitbucket}; Portus 2.4.3's openId is OpenID 2.0, it has no OpenID Connect."),
    Key("email", as_object, None, None,
        "Portus's mail (its email section): {from, name, replyTo, smtp: {address, port, domain, sslTls,"
        " enableStarttlsAuto, opensslVerifyMode, ca, userName, password, authentication, cidrs}}."),
    Key("tagRetention", as_object, None, None,
        "Delete old tags in the background (Portus's delete.garbage_collector): {enabled, olderThan (days), tag}."),
    Key("permissions", as_object, None, None,
        "What users who are not administrators may do (Portus's user_permission): {changeVisibility, createTeam,"
        " manageTeam, createNamespace, manageNamespace, createWebhook, manageWebhook, pushImages}."),
    Key("tls", as_object, {}, None,
        "Where the edge certificate comes from: {source: selfSigned (default: the platform CA signs it), secret "
        "(secretName: an existing kubernetes.io/tls Secret in the namespace for host and registryHost) or "
        "certManager (issuer: {name, kind: Issuer|ClusterIssuer, group}, duration, renewBefore); caCertificate: "
        "the PEM of the private CA that signs a secret's or certManager's certificate (unset for a public CA)}."),
    Key("nodeTrust", as_object, {}, None,
        "Let the cluster's nodes pull from the registry: {enabled (default false): a DaemonSet writes the CA into "
        "every node's /etc/containerd/certs.d/<registryHost>/, namespace (default portus-node-trust): its own "
        "namespace, docker (default false): also /etc/docker/certs.d/<registryHost>/}."),
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
                parse = cpu_quantity if resource == "cpu" else byte_quantity
                try:
                    changes[_RESOURCE_FIELDS[kind, resource]] = parse(value)
                except ValueError as allowed:
                    raise ConfigError(f"{path}.{kind}.{resource}", value, str(allowed)) from None
        resources[workload] = replace(resources[workload], **changes)
    for workload, spec in resources.items():
        for resource, request, limit in (
            ("cpu", spec.cpu_request, spec.cpu_limit), ("memory", spec.memory_request, spec.memory_limit),
        ):
            if quantity_value(request) > quantity_value(limit):
                raise ConfigError(
                    f"resources.{workload}.requests.{resource}", request, f"must not exceed the limit {limit}"
                )
    return resources


def parse_backup(raw: dict[str, Any], internal_database: bool, default_class: str | None) -> BackupConfig:
    """Backups dump the platform's own MariaDB: on by default with it, and impossible without it."""
    fields = ObjectValue("backup", raw, ("enabled", "schedule", "retain", "storageSize", "storageClass"))
    enabled = fields.get("enabled", as_bool, internal_database)
    if enabled and not internal_database:
        raise fields.error("enabled", "backups dump the internal MariaDB; back up an external database with its "
                           "own tools and set backup.enabled to false")
    defaults = BackupConfig(enabled=enabled)
    return BackupConfig(
        enabled=enabled,
        schedule=fields.get("schedule", cron_schedule, defaults.schedule),
        retain=fields.get("retain", int_between(1, 365), defaults.retain),
        storage_size=fields.get("storageSize", byte_quantity, defaults.storage_size),
        storage_class=fields.get("storageClass", dns_label, default_class),
    )


def _label_values(raw: Any) -> dict[str, str]:
    labels = as_object(raw)
    if not all(isinstance(v, str) and _LABEL_VALUE.fullmatch(v) and _LABEL_KEY.fullmatch(k) for k, v in labels.items()):
        raise ValueError("an object of Kubernetes labels, e.g. {release: kube-prometheus-stack}")
    return labels


def _parse_metrics(raw: dict[str, Any]) -> MetricsConfig:
    fields = ObjectValue("metrics", raw, ("serviceMonitor", "namespace", "labels"))
    defaults = MetricsConfig()
    return MetricsConfig(
        service_monitor=fields.get("serviceMonitor", as_bool, defaults.service_monitor),
        namespace=fields.get("namespace", dns_label, defaults.namespace),
        labels=fields.get("labels", _label_values, defaults.labels),
    )


# Each edge certificate source and the fields of `tls` it reads besides `source`.
TLS_SOURCE_FIELDS: dict[str, tuple[str, ...]] = {
    "selfSigned": (),
    "secret": ("secretName", "caCertificate"),
    "certManager": ("issuer", "duration", "renewBefore", "caCertificate"),
}
_TLS_FIELDS = ("source", "secretName", "caCertificate", "issuer", "duration", "renewBefore")


def parse_tls(raw: dict[str, Any]) -> EdgeCertificateSource:
    fields = ObjectValue("tls", raw, _TLS_FIELDS)
    source = fields.get("source", one_of(*TLS_SOURCE_FIELDS), "selfSigned")
    for name in _TLS_FIELDS[1:]:
        if fields.has(name) and name not in TLS_SOURCE_FIELDS[source]:
            readers = " or ".join(s for s, names in TLS_SOURCE_FIELDS.items() if name in names)
            raise fields.error(name, f"only applies to tls.source={readers}, not {source}", name == "caCertificate")
    return _TLS_SOURCES[source](fields)


def _ca_certificate(fields: ObjectValue) -> str | None:
    # Never shown: a value pasted by mistake may be a private key.
    return fields.get("caCertificate", pem_certificates, None, secret=True)


def _existing_secret(fields: ObjectValue) -> ExistingSecret:
    name = fields.require(
        "secretName", object_name,
        "required with tls.source=secret: the kubernetes.io/tls Secret in the namespace with the edge certificate",
    )
    if name in (PLATFORM_SECRET, CERT_MANAGER_SECRET):
        raise fields.error("secretName", f"{PLATFORM_SECRET} and {CERT_MANAGER_SECRET} are the platform's own "
                                         "Secrets; name yours otherwise")
    return ExistingSecret(secret_name=name, ca_certificate=_ca_certificate(fields))


def _issuer(fields: ObjectValue) -> IssuerRef:
    if not fields.has("issuer"):
        raise fields.error("issuer", "required with tls.source=certManager: {name, kind: Issuer|ClusterIssuer, group}")
    issuer = ObjectValue("tls.issuer", fields.raw["issuer"], ("name", "kind", "group"))
    name = issuer.require("name", object_name, "the name of the Issuer or ClusterIssuer that signs the certificate")
    group = issuer.get("group", object_name, CERT_MANAGER_GROUP)
    if group != CERT_MANAGER_GROUP:
        # An external issuer (AWS Private CA, Google CAS, step-ca, ...) has kinds of its own.
        return IssuerRef(name, issuer.require("kind", kind_name, f"required with the issuer group {group}"), group)
    return IssuerRef(name, issuer.get("kind", one_of("Issuer", "ClusterIssuer"), "Issuer"), group)


def _cert_manager(fields: ObjectValue) -> CertManagerCertificate:
    """cert-manager's own limits (internal/apis/certmanager/validation/certificate.go ``ValidateDuration`` @
    v1.21.0): a duration of at least 1h, renewBefore at least 5m and shorter than the duration."""
    duration = fields.get("duration", go_duration, None)
    renew_before = fields.get("renewBefore", go_duration, None)
    if duration and duration_seconds(duration) < 3600:
        raise fields.error("duration", "at least 1h, cert-manager's minimum")
    lifetime = duration or CERT_MANAGER_DEFAULT_DURATION
    if renew_before and not 300 <= duration_seconds(renew_before) < duration_seconds(lifetime):
        raise fields.error("renewBefore", f"at least 5m and shorter than the duration ({lifetime})")
    return CertManagerCertificate(_issuer(fields), duration, renew_before, _ca_certificate(fields))


_TLS_SOURCES: dict[str, Callable[[ObjectValue], EdgeCertificateSource]] = {
    "selfSigned": lambda _fields: GeneratedCertificate(),
    "secret": _existing_secret,
    "certManager": _cert_manager,
}


def parse_node_trust(raw: dict[str, Any], platform_namespace: str, tls: EdgeCertificateSource) -> NodeTrustConfig:
    fields = ObjectValue("nodeTrust", raw, ("enabled", "namespace", "docker"))
    defaults = NodeTrustConfig()
    config = NodeTrustConfig(
        enabled=fields.get("enabled", as_bool, defaults.enabled),
        namespace=fields.get("namespace", dns_label, defaults.namespace),
        docker=fields.get("docker", as_bool, defaults.docker),
    )
    if config.enabled and config.namespace == platform_namespace:
        raise fields.error("namespace", "a namespace of its own: its pods mount host directories, which the "
                                        "platform's restricted namespace refuses")
    if config.enabled and not tls.client_trust_configured:
        raise fields.error("enabled", "nothing to install: a public CA signs the edge certificate (tls sets no "
                                      "caCertificate), and the nodes trust it already")
    return config


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
            raise ConfigError(key.name, "[secret]" if key.holds_secrets else value, str(allowed)) from None

    mode = Exposure(values["exposure"])
    exposure = _parse_exposure(mode, values, raw)
    if values["renderYamlTo"] and values["adoptExisting"]:
        raise ConfigError("adoptExisting", True, "takes over objects in a cluster; renderYamlTo deploys to none")
    tls = parse_tls(values["tls"])
    registry_storage = _parse_registry_storage(values)
    if values["registryReplicas"] > 1 and not registry_storage.shared:
        raise ConfigError(
            "registryReplicas", values["registryReplicas"],
            "more than 1 needs storage every replica can use: registryStorage type s3, or type filesystem "
            "with accessMode ReadWriteMany",
        )
    resources = _parse_resources(values["resources"])
    database = _parse_database(values, resources["database"])
    return PlatformConfig(
        namespace=values["namespace"],
        host=values["host"],
        registry_host=values["registryHost"] or values["host"],
        exposure=exposure,
        storage=StorageConfig(
            storage_class=values["storageClass"],
            registry=registry_storage,
            database_size=values["databaseStorageSize"],
            keep_on_destroy=values["keepDataOnDestroy"],
            adopt_existing=values["adoptExisting"],
        ),
        images=Images(
            portus=values["portusImage"], registry=values["registryImage"],
            database=values["databaseImage"], proxy=values["proxyImage"],
            proxy_exporter=values["proxyExporterImage"],
        ),
        resources=resources,
        database=database,
        registry_cache=_parse_registry_cache(values["registryCache"]),
        registry_replicas=values["registryReplicas"],
        portus_replicas=values["portusReplicas"],
        proxy_replicas=values["proxyReplicas"],
        admin_username=values["adminUsername"],
        admin_email=values["adminEmail"],
        log_level=values["logLevel"],
        signup_enabled=values["signupEnabled"],
        cluster_domain=values["clusterDomain"],
        render_yaml_to=values["renderYamlTo"],
        catalog_sync=values["catalogSync"],
        backup=database.backup,
        metrics=_parse_metrics(values["metrics"]),
        portus_settings=_parse_portus_settings(values),
        tls=tls,
        node_trust=parse_node_trust(values["nodeTrust"], values["namespace"], tls),
    )


def _parse_registry_storage(values: dict[str, Any]) -> StorageBackend:
    storage = ObjectValue("registryStorage", values["registryStorage"], (
        "type", "accessMode", "bucket", "region", "regionEndpoint", "rootDirectory", "secure", "chunkSize",
        "credentialsSecret", "accessKey", "secretKey", "redirect", "cidrs",
    ), secrets=("accessKey", "secretKey"))
    kind = storage.require("type", one_of("filesystem", "s3"), "required: filesystem or s3")
    if kind == "filesystem":
        for name in storage.fields[2:]:
            storage.check(not storage.has(name), name, "only applies to type s3")
        if values["registryExistingClaim"] and values["registryStorageSize"]:
            raise ConfigError(
                "registryStorageSize", values["registryStorageSize"],
                "conflicts with registryExistingClaim: the existing claim's size is used; set only one",
            )
        return FilesystemStorage(
            size=values["registryStorageSize"] or "20Gi",
            storage_class=values["storageClass"],
            existing_claim=values["registryExistingClaim"],
            access_mode=storage.get("accessMode", one_of(*ACCESS_MODES), "ReadWriteOnce"),
        )
    storage.check(not storage.has("accessMode"), "accessMode", "only applies to type filesystem")
    for name in ("registryStorageSize", "registryExistingClaim"):
        if values[name]:
            raise ConfigError(name, values[name], "only applies to registryStorage type filesystem")
    has_keys = storage.has("accessKey") or storage.has("secretKey")
    storage.check(not (has_keys and storage.has("credentialsSecret")), "credentialsSecret",
                  "set either credentialsSecret or accessKey and secretKey, not both")
    if has_keys:
        for name in ("accessKey", "secretKey"):
            storage.require(name, secret_text, "required with the other of accessKey and secretKey", secret=True)
    return S3Storage(
        bucket=storage.require("bucket", bucket_name, "required with type s3"),
        region=storage.require("region", region_name, "required with type s3 (any value the service accepts)"),
        region_endpoint=storage.get("regionEndpoint", endpoint_url, None),
        root_directory=storage.get("rootDirectory", root_directory, None),
        secure=storage.get("secure", as_bool, True),
        chunk_size=storage.get("chunkSize", byte_count(S3_MIN_CHUNK, S3_MAX_CHUNK), None),
        credentials_secret=storage.get("credentialsSecret", object_name, None),
        access_key=storage.get("accessKey", secret_text, None, secret=True),
        secret_key=storage.get("secretKey", secret_text, None, secret=True),
        redirect=storage.get("redirect", as_bool, False),
        cidrs=storage.get("cidrs", cidr_list, ()),
    )


def _parse_registry_cache(raw: Any) -> BlobDescriptorCache:
    cache = ObjectValue("registryCache", raw, ("type", "address", "passwordSecret", "password", "db", "cidrs"),
                        secrets=("password",))
    if cache.require("type", one_of("inmemory", "redis"), "required: inmemory or redis") == "inmemory":
        for name in cache.fields[1:]:
            cache.check(not cache.has(name), name, "only applies to type redis")
        return InMemoryCache()
    cache.check(not (cache.has("password") and cache.has("passwordSecret")), "passwordSecret",
                "set either passwordSecret or password, not both")
    host, redis_port = cache.require("address", host_port, "required with type redis: host:port")
    return RedisCache(
        host=host,
        port=redis_port,
        db=cache.get("db", int_between(0, 1023), 0),
        password_secret=cache.get("passwordSecret", object_name, None),
        password=cache.get("password", secret_text, None, secret=True),
        cidrs=cache.get("cidrs", cidr_list, ()),
    )


def _parse_database(values: dict[str, Any], resources: ResourceSpec) -> DatabaseEndpoint:
    db = ObjectValue("database", values["database"], (
        "type", "adapter", "host", "port", "name", "username", "passwordSecret", "password", "cidrs",
    ), secrets=("password",))
    internal = db.require("type", one_of("internal", "external"), "required: internal or external") == "internal"
    backup = parse_backup(values["backup"], internal_database=internal, default_class=values["storageClass"])
    if internal:
        for name in db.fields[1:]:
            db.check(not db.has(name), name, "only applies to type external")
        return InternalDatabase(
            image=values["databaseImage"], resources=resources, storage_size=values["databaseStorageSize"],
            storage_class=values["storageClass"], backups=backup,
        )
    db.check(db.has("password") or db.has("passwordSecret"), "passwordSecret",
             "required with type external: passwordSecret (a Secret with key password) or password (secret config)")
    db.check(not (db.has("password") and db.has("passwordSecret")), "passwordSecret",
             "set either passwordSecret or password, not both")
    adapter = db.require("adapter", one_of(*ADAPTERS), "required with type external: mysql2 or postgresql")
    return ExternalDatabase(
        adapter=adapter,
        host=db.require("host", network_host, "required with type external"),
        port=db.get("port", port, DEFAULT_PORTS[adapter]),
        name=db.require("name", database_name, "required with type external"),
        username=db.require("username", database_name, "required with type external"),
        password_secret=db.get("passwordSecret", object_name, None),
        password=db.get("password", secret_text, None, secret=True),
        cidrs=db.get("cidrs", cidr_list, ()),
    )


def bucket_name(raw: Any) -> str:
    value = as_str(raw)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", value) or ".." in value:
        raise ValueError("an S3 bucket name: 3 to 63 lower-case letters, digits, '.' and '-'")
    return value


region_name = matching(r"[a-z0-9][a-z0-9-]*", "a region name such as us-east-1 (lower-case letters, digits and '-')")


def endpoint_url(raw: Any) -> str:
    value = as_str(raw)
    parts = urlsplit(value)
    try:
        valid = parts.scheme in ("https", "http") and bool(parts.hostname) and parts.port != 0
        valid = valid and parts.path in ("", "/") and not parts.query and not parts.username
    except ValueError:
        valid = False
    if not valid:
        raise ValueError("an https:// (or http://) URL of the service, with an optional port and no path, "
                         "e.g. https://minio.example.com:9000")
    return value.rstrip("/")


root_directory = matching(r"/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*/?", "a path inside the bucket, e.g. /registry")
database_name = matching(r"[A-Za-z0-9_$.@-]{1,63}", "1 to 63 letters, digits or _ $ . @ -")


def _parse_portus_settings(values: dict[str, Any]) -> PortusSettings:
    """Each setting from its own key; a key that is not set (or ``enabled: false``) contributes nothing."""
    ldap = Ldap.parse("ldap", values["ldap"]) if values["ldap"] is not None else None
    if ldap and values["signupEnabled"]:
        raise ConfigError("signupEnabled", True, "has no effect with LDAP (Portus creates accounts at the first"
                                                  " LDAP sign-in); remove it or set it to false")
    parts = (
        ldap,
        OAuth.parse("oidc", values["oidc"], ldap_enabled=ldap is not None) if values["oidc"] is not None else None,
        Email.parse("email", values["email"], helo_domain=values["host"]) if values["email"] is not None else None,
        TagRetention.parse("tagRetention", values["tagRetention"]) if values["tagRetention"] is not None else None,
        Permissions.parse("permissions", values["permissions"]) if values["permissions"] is not None else None,
    )
    return PortusSettings(tuple(part for part in parts if part is not None))


def _parse_exposure(mode: Exposure, values: dict[str, Any], raw: Mapping[str, Any]) -> Edge:
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
        return ProxyEdge(mode, 443 if port is None else port)
    for name in ("host", "registryHost"):
        if values[name] and ip_address(values[name]):
            raise ConfigError(
                name, values[name],
                "a DNS name with exposure=ingress (an Ingress routes by host name);"
                " an IP address needs exposure nodePort or loadBalancer",
            )
    return IngressEdge(
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
