"""An ingress-nginx stand-in: the nginx.conf that the ingress-nginx controller (v1.10 to v1.12) generates
for a set of Ingress objects, written for the stock nginx the rehearsal runs (Debian's 1.22).

Everything here follows kubernetes/ingress-nginx at tag controller-v1.12.8
(f2999a195b20914d34c0d3c90ab5e694b4e8088b); v1.10.6 and v1.11.8 do the same for every annotation below.
Files are cited relative to that tree: the template is rootfs/etc/nginx/template/nginx.tmpl, its helpers
internal/ingress/controller/template/template.go, the defaults (the controller's ConfigMap)
internal/ingress/controller/config/config.go ``NewDefault``.

How Ingresses become servers and locations (internal/ingress/controller/controller.go
``getBackendServers``, ``createServers``; location.go ``updateServerLocations``; store/store.go
``sortIngressSlice``):

- Ingresses of the controller's class, oldest first; equal creation times by ``namespace/name``,
  descending. Rendered objects carry no creation time, so they tie (as objects created in the same second
  do in a cluster); ``created`` overrides the order.
- One server per host. The first Ingress naming a host creates it with a root location ``/`` for the
  default backend (404 without ``--default-backend-service``), under that Ingress's annotations; the first
  Ingress with ``spec.tls`` for the host gives its certificate.
- Each path becomes a location carrying the annotations of the Ingress that declared it. A path already
  taken with the same pathType stays with the older Ingress, except the default root location, which the
  first Ingress with a ``/`` path takes over. ``ImplementationSpecific`` and no pathType mean ``Prefix``
  (internal/k8s/main.go ``SetDefaultNGINXPathType``).
- Locations are sorted longest path first, then each ``Prefix`` path other than ``/`` gets a trailing ``/``
  and an ``Exact`` copy with its original path (unless an ``Exact`` location of that path exists):
  ``Prefix /v2/`` serves ``location /v2/`` and ``location = /v2/``.

Annotations (prefix ``nginx.ingress.kubernetes.io/``) map to these directives in the location block,
each parsed as the controller does. The controller silently replaces a value it rejects with its default;
the stand-in refuses such a value, and any annotation not in this list, with ``IngressError``: a stack that
relied on either would not get what it asked for.

============================  ============================================  ==========  ==========================
annotation                    directive (location block)                    default     parser (annotations/...)
============================  ============================================  ==========  ==========================
proxy-body-size               client_max_body_size                          1m          proxy/main.go
client-body-buffer-size       client_body_buffer_size (none when absent:    (http 8k)   clientbodybuffersize/main.go
                              the http block's applies)
proxy-buffer-size             proxy_buffer_size, and the size in            4k          proxy/main.go
                              proxy_buffers
proxy-buffers-number          the number in proxy_buffers                   4           proxy/main.go
proxy-buffering               proxy_buffering                               off         proxy/main.go
proxy-request-buffering       proxy_request_buffering                       on          proxy/main.go
proxy-http-version            proxy_http_version                            1.1         proxy/main.go
proxy-max-temp-file-size      proxy_max_temp_file_size                      1024m       proxy/main.go
proxy-connect-timeout         proxy_connect_timeout <n>s                    5           proxy/main.go
proxy-read-timeout            proxy_read_timeout <n>s                       60          proxy/main.go
proxy-send-timeout            proxy_send_timeout <n>s                       60          proxy/main.go
backend-protocol              proxy_pass http:// or https://                HTTP        backendprotocol/main.go
proxy-ssl-secret              proxy_ssl_trusted_certificate (its ca.crt),   (none)      proxyssl/main.go
                              with proxy_ssl_ciphers, _protocols, _verify,
                              _verify_depth; also in the server block,
                              from the first Ingress that sets it
proxy-ssl-verify              proxy_ssl_verify                              off         proxyssl/main.go
proxy-ssl-verify-depth        proxy_ssl_verify_depth                        1           proxyssl/main.go
proxy-ssl-name                proxy_ssl_name (unset: nginx checks the       (none)      proxyssl/main.go
                              upstream's name, ``upstream_balancer``)
proxy-ssl-server-name         proxy_ssl_server_name                         off         proxyssl/main.go
proxy-ssl-protocols           proxy_ssl_protocols (sorted)                  TLSv1.2     proxyssl/main.go
proxy-ssl-ciphers             proxy_ssl_ciphers                             DEFAULT     proxyssl/main.go
ssl-redirect                  308 from plain HTTP to https://<host><uri     true        rewrite/main.go
                              without a trailing />, if the host has TLS
ssl-prefer-server-ciphers     ssl_prefer_server_ciphers on|off in the       (http: on)  sslcipher/main.go
                              server block, from the first Ingress of the
                              host that sets it
============================  ============================================  ==========  ==========================

The proxy-ssl-* annotations other than the secret are read only when ``proxy-ssl-secret`` is set
(proxyssl/main.go ``Parse``); the stand-in refuses them without it. A proxy-ssl-secret that is missing,
in another namespace, or without ``ca.crt`` makes the controller deny the location (``return 503``); the
stand-in refuses it.

Where the controller relies on OpenResty, the stand-in uses plain nginx: one ``upstream`` per backend
Service with the pods' addresses (the controller's single ``upstream_balancer`` picks them in Lua, with
the same keepalive settings); ``ssl_certificate`` per server (the controller serves it from memory by SNI);
``if ($scheme = http) { return 308 ...; }`` for the redirect and ``add_header`` for HSTS (Lua in
rootfs/etc/nginx/lua/lua_ingress.lua); ``listen ... ssl http2`` for ``http2 on`` (nginx 1.25.1+). The
``Server`` header is not removed (headers-more). Logs go to stdout and stderr, as the controller image's
log files do.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cryptography import x509

PREFIX = "nginx.ingress.kubernetes.io/"


class IngressError(ValueError):
    """What the controller would not serve as written (it would fall back to a default, deny the location
    or serve its fake certificate), or what this stand-in does not emulate."""


# --------------------------------------------------------------------------- annotation values

# annotations/parser/validators.go SizeRegex, applied with spaces removed.
SIZE = re.compile(r"^(?i:\d+[bkmg]?)$")
# template.go isValidByteSize: nginx sizes (client_body_buffer_size) and offsets (client_max_body_size,
# proxy_max_temp_file_size); proxy_buffer_size is not checked there, so nginx itself refuses b and g.
NGINX_SIZE = re.compile(r"^\d+[kKmM]?$")
NGINX_OFFSET = re.compile(r"^\d+[kKmMgG]?$")
# annotations/proxyssl/main.go
SSL_PROTOCOLS = re.compile(r"^(TLSv1\.2|TLSv1\.3| )*$")
SSL_CIPHERS = re.compile(r"^[A-Za-z0-9+:_\-!]*$")
# annotations/parser/validators.go IsValidRegex (ValidateServerName) and BasicCharsRegex.
SERVER_NAME = re.compile(r"^[/\-._~a-zA-Z0-9:^$\[\](){}*+?|&=\\]*$")
NAMESPACED_NAME = re.compile(r"^[/\-._~a-zA-Z0-9:]*$")
# Go's strconv.ParseBool.
BOOLEANS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), "true"),
            **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), "false")}


def _size(pattern: re.Pattern[str]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.replace(" ", "")
        if not (SIZE.match(value) and pattern.match(value)):
            raise ValueError("a size nginx accepts here, e.g. 0, 512k, 8m")
        return value
    return parse


def _integer(value: str) -> str:
    if not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError("an integer")
    return str(int(value))


def _one_of(*allowed: str, fold: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if (value.lower() if fold else value) not in allowed:
            raise ValueError("one of " + ", ".join(allowed))
        return value.upper() if fold else value
    return parse


def _boolean(value: str) -> str:
    if value not in BOOLEANS:
        raise ValueError("true or false")
    return BOOLEANS[value]


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if not pattern.match(value.replace(" ", "")):
            raise ValueError(what)
        return value.strip()
    return parse


def _protocols(value: str) -> str:
    if not SSL_PROTOCOLS.match(value.replace(" ", "")):
        raise ValueError("TLSv1.2 and/or TLSv1.3")
    protocols = sorted(p for p in value.split(" ") if p.strip())
    return " ".join(protocols) or "TLSv1.2"


@dataclass(frozen=True)
class Annotation:
    parse: Callable[[str], str]
    default: str | None
    """The controller's value when the annotation is absent; None: no directive."""
    needs_proxy_ssl_secret: bool = False


ANNOTATIONS: dict[str, Annotation] = {
    "proxy-body-size": Annotation(_size(NGINX_OFFSET), "1m"),
    "client-body-buffer-size": Annotation(_size(NGINX_SIZE), None),
    "proxy-buffer-size": Annotation(_size(NGINX_SIZE), "4k"),
    "proxy-buffers-number": Annotation(_integer, "4"),
    "proxy-buffering": Annotation(_one_of("on", "off"), "off"),
    "proxy-request-buffering": Annotation(_one_of("on", "off"), "on"),
    "proxy-http-version": Annotation(_one_of("1.0", "1.1"), "1.1"),
    "proxy-max-temp-file-size": Annotation(_size(NGINX_OFFSET), "1024m"),
    "proxy-connect-timeout": Annotation(_integer, "5"),
    "proxy-read-timeout": Annotation(_integer, "60"),
    "proxy-send-timeout": Annotation(_integer, "60"),
    "backend-protocol": Annotation(_one_of("auto_http", "http", "https", "grpc", "grpcs", "fcgi", fold=True), "HTTP"),
    "proxy-ssl-secret": Annotation(_matching(NAMESPACED_NAME, "namespace/name"), None),
    "proxy-ssl-verify": Annotation(_one_of("on", "off"), "off", needs_proxy_ssl_secret=True),
    "proxy-ssl-verify-depth": Annotation(_integer, "1", needs_proxy_ssl_secret=True),
    "proxy-ssl-name": Annotation(_matching(SERVER_NAME, "a server name"), None, needs_proxy_ssl_secret=True),
    "proxy-ssl-server-name": Annotation(_one_of("on", "off"), "off", needs_proxy_ssl_secret=True),
    "proxy-ssl-protocols": Annotation(_protocols, "TLSv1.2", needs_proxy_ssl_secret=True),
    "proxy-ssl-ciphers": Annotation(_matching(SSL_CIPHERS, "an OpenSSL cipher list"), "DEFAULT",
                                    needs_proxy_ssl_secret=True),
    "ssl-redirect": Annotation(_boolean, "true"),
    "ssl-prefer-server-ciphers": Annotation(_boolean, None),
}


def parse_annotations(ingress: Mapping[str, Any]) -> dict[str, str | None]:
    """Every annotation of the table for this Ingress: its value, or the controller's default."""
    given = {
        key.removeprefix(PREFIX): value
        for key, value in (ingress["metadata"].get("annotations") or {}).items()
        if key.startswith(PREFIX)
    }
    name = _key(ingress)
    if unknown := sorted(set(given) - set(ANNOTATIONS)):
        raise IngressError(f"Ingress {name}: annotation {PREFIX}{unknown[0]} is not emulated")
    values: dict[str, str | None] = {}
    for key, annotation in ANNOTATIONS.items():
        if key not in given:
            values[key] = annotation.default
            continue
        if annotation.needs_proxy_ssl_secret and "proxy-ssl-secret" not in given:
            raise IngressError(f"Ingress {name}: {PREFIX}{key} is ignored without proxy-ssl-secret")
        try:
            values[key] = annotation.parse(str(given[key]))
        except ValueError as allowed:
            raise IngressError(
                f"Ingress {name}: {PREFIX}{key} = {given[key]!r}: the controller would use its default"
                f" ({annotation.default}); allowed: {allowed}"
            ) from None
    if values["proxy-ssl-verify-depth"] == "0":
        values["proxy-ssl-verify-depth"] = "1"
    return values


# --------------------------------------------------------------------------- the controller's own settings


@dataclass(frozen=True)
class ControllerConfig:
    """The controller's ConfigMap: config.go ``NewDefault`` unless changed (``with_configmap``)."""

    worker_processes: int = 2
    """runtime.NumCPU() in the controller's container."""
    client_body_buffer_size: str = "8k"
    ssl_buffer_size: str = "4k"
    ssl_protocols: str = "TLSv1.2 TLSv1.3"
    ssl_ciphers: str = (
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
        "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384"
    )
    keepalive_timeout: int = 75
    keepalive_requests: int = 1000
    http2_max_concurrent_streams: int = 128
    upstream_keepalive: int = 320
    upstream_keepalive_time: str = "1h"
    upstream_keepalive_timeout: int = 60
    upstream_keepalive_requests: int = 10000
    error_log_level: str = "notice"
    hsts: str = "max-age=31536000; includeSubDomains"
    http_redirect_code: int = 308

    def with_configmap(self, data: Mapping[str, str]) -> ControllerConfig:
        """These settings with ConfigMap keys (``ssl-buffer-size: 16k``) applied; a key the stand-in
        does not emulate is refused."""
        changes: dict[str, Any] = {}
        for key, value in data.items():
            if key not in CONFIGMAP_KEYS:
                raise IngressError(f"ConfigMap key {key} is not emulated; known: {', '.join(CONFIGMAP_KEYS)}")
            field_name, parse = CONFIGMAP_KEYS[key]
            try:
                changes[field_name] = parse(value)
            except ValueError as allowed:
                raise IngressError(f"ConfigMap {key} = {value!r}: {allowed}") from None
        return replace(self, **changes)


# ConfigMap key -> (ControllerConfig field, parser): the keys of config.go's Configuration behind the
# http block's throughput settings.
CONFIGMAP_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "worker-processes": ("worker_processes", int),
    "client-body-buffer-size": ("client_body_buffer_size", _size(NGINX_SIZE)),
    "ssl-buffer-size": ("ssl_buffer_size", _size(NGINX_SIZE)),
    "keep-alive": ("keepalive_timeout", int),
    "keep-alive-requests": ("keepalive_requests", int),
    "http2-max-concurrent-streams": ("http2_max_concurrent_streams", int),
    "upstream-keepalive-connections": ("upstream_keepalive", int),
    "upstream-keepalive-timeout": ("upstream_keepalive_timeout", int),
    "upstream-keepalive-requests": ("upstream_keepalive_requests", int),
}


DEFAULT_CONTROLLER = ControllerConfig()


@dataclass(frozen=True)
class Listen:
    address: str
    https_port: int
    http_port: int


# --------------------------------------------------------------------------- servers and locations


@dataclass(frozen=True)
class Upstream:
    name: str
    """``<namespace>-<service>-<port>`` (controller/util.go ``upstreamName``)."""
    service: str
    port: int
    addresses: tuple[str, ...]


@dataclass
class Location:
    path: str
    exact: bool
    ingress: str
    """``namespace/name`` of the Ingress that declared it."""
    annotations: dict[str, str | None]
    upstream: Upstream | None
    """None: the default backend."""
    ca_file: Path | None = None


@dataclass
class Server:
    host: str
    locations: list[Location] = field(default_factory=list)
    certificate: Path | None = None
    proxy_ssl: Location | None = None
    """The proxy-ssl settings of the first Ingress of the host that has a CA (controller.go
    ``getBackendServers``, ConfigMap proxy-ssl-location-only false): the server's defaults."""
    prefer_server_ciphers: str | None = None
    """From the first Ingress of the host that sets it (controller.go ``createServers``)."""


def _key(obj: Mapping[str, Any]) -> str:
    return f"{obj['metadata'].get('namespace', 'default')}/{obj['metadata']['name']}"


def _ordered(ingresses: list[Mapping[str, Any]], created: Sequence[str] | None) -> list[Mapping[str, Any]]:
    if created is not None:
        rank = {name: index for index, name in enumerate(created)}
        return sorted(ingresses, key=lambda i: rank[i["metadata"]["name"]])
    by_name = sorted(ingresses, key=_key, reverse=True)
    return sorted(by_name, key=lambda i: i["metadata"].get("creationTimestamp") or "")


def _data(secret: Mapping[str, Any]) -> dict[str, str]:
    if "data" in secret:
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    return dict(secret.get("stringData") or {})


class _Cluster:
    """The objects the controller reads, and where it writes its files."""

    def __init__(self, objects: Sequence[Mapping[str, Any]], endpoints: Mapping[str, Sequence[str]],
                 ssl_dir: Path) -> None:
        self.objects = {(o["kind"], _key(o)): o for o in objects}
        self.endpoints = endpoints
        self.ssl_dir = ssl_dir

    def secret(self, key: str, ingress: str, use: str) -> dict[str, str]:
        found = self.objects.get(("Secret", key))
        if found is None:
            raise IngressError(f"Ingress {ingress}: {use} Secret {key} does not exist")
        return _data(found)

    def upstream(self, namespace: str, backend: Mapping[str, Any], ingress: str) -> Upstream:
        service_ref = backend.get("service")
        if not service_ref or "number" not in service_ref["port"]:
            raise IngressError(f"Ingress {ingress}: only Service backends with a port number are emulated")
        name, port = service_ref["name"], int(service_ref["port"]["number"])
        service = self.objects.get(("Service", f"{namespace}/{name}"))
        if service is None or port not in [p["port"] for p in service["spec"]["ports"]]:
            raise IngressError(f"Ingress {ingress}: Service {namespace}/{name} has no port {port} (503)")
        addresses = tuple(self.endpoints.get(name, ()))
        if not addresses:
            raise IngressError(f"Ingress {ingress}: no endpoints given for Service {name} (503)")
        return Upstream(f"{namespace}-{name}-{port}", name, port, addresses)

    def ca_file(self, annotations: Mapping[str, str | None], namespace: str, ingress: str) -> Path | None:
        """ssl.ConfigureCACert: the Secret's ca.crt written to ``ca-<namespace>-<name>.pem``."""
        reference = annotations["proxy-ssl-secret"]
        if reference is None:
            return None
        if reference.split("/")[0] != namespace or reference.count("/") != 1:
            raise IngressError(f"Ingress {ingress}: proxy-ssl-secret {reference} is not in its namespace (503)")
        data = self.secret(reference, ingress, "proxy-ssl-secret")
        if "ca.crt" not in data:
            raise IngressError(f"Ingress {ingress}: proxy-ssl-secret {reference} has no ca.crt (503)")
        if "tls.crt" in data:
            raise IngressError(f"Ingress {ingress}: client certificates to backends are not emulated")
        path = self.ssl_dir / f"ca-{reference.replace('/', '-')}.pem"
        path.write_text(data["ca.crt"])
        return path

    def certificate(self, namespace: str, secret_name: str, host: str, ingress: str) -> Path:
        """The TLS Secret as one PEM file; the controller would serve its fake certificate instead of one
        that does not name the host (controller.go ``createServers``)."""
        data = self.secret(f"{namespace}/{secret_name}", ingress, "TLS")
        cert = x509.load_pem_x509_certificate(data["tls.crt"].encode())
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if not any(_name_matches(pattern, host) for pattern in names.get_values_for_type(x509.DNSName)):
            raise IngressError(f"Ingress {ingress}: certificate of {secret_name} does not name {host}")
        path = self.ssl_dir / f"{namespace}-{secret_name}.pem"
        path.write_text(data["tls.crt"].rstrip("\n") + "\n" + data["tls.key"])
        return path


def _name_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        return host.split(".", 1)[-1] == pattern[2:] and host.count(".") == pattern.count(".")
    return pattern.lower() == host.lower()


def _path_type(path: Mapping[str, Any], ingress: str) -> str:
    kind = path.get("pathType") or "Prefix"
    kind = "Prefix" if kind == "ImplementationSpecific" else kind
    # The admission webhook's strict-validate-path-type (on by default from v1.12; config.go).
    if not re.fullmatch(r"/[A-Za-z0-9._\-/]*", path.get("path") or "/"):
        raise IngressError(f"Ingress {ingress}: path {path.get('path')!r} is not a plain path")
    return str(kind)


def build_servers(objects: Sequence[Mapping[str, Any]], ingress_class: str, endpoints: Mapping[str, Sequence[str]],
                  ssl_dir: Path, created: Sequence[str] | None = None) -> list[Server]:
    """The servers the controller builds for the Ingresses of ``ingress_class``, locations in their final
    order. ``endpoints`` are the pods' addresses by Service name."""
    cluster = _Cluster(objects, endpoints, ssl_dir)
    ingresses = [o for o in objects if o["kind"] == "Ingress" and o["spec"].get("ingressClassName") == ingress_class]
    servers: dict[str, Server] = {}
    for ingress in _ordered(ingresses, created):
        _add_ingress(ingress, servers, cluster)
    for server in servers.values():
        server.locations = _normalized(_sorted(server.locations))
    return list(servers.values())


def _add_ingress(ingress: Mapping[str, Any], servers: dict[str, Server], cluster: _Cluster) -> None:
    name, namespace = _key(ingress), ingress["metadata"].get("namespace", "default")
    annotations = parse_annotations(ingress)
    if annotations["backend-protocol"] not in ("HTTP", "HTTPS"):
        raise IngressError(f"Ingress {name}: backend-protocol {annotations['backend-protocol']} is not emulated")
    ca_file = cluster.ca_file(annotations, namespace, name)
    spec = ingress["spec"]
    for rule in spec.get("rules", []):
        host = rule.get("host")
        if not host:
            raise IngressError(f"Ingress {name}: rules without a host are not emulated")
        server = servers.setdefault(host, Server(host, [Location("/", False, name, annotations, None, ca_file)]))
        if server.prefer_server_ciphers is None and annotations["ssl-prefer-server-ciphers"]:
            server.prefer_server_ciphers = "on" if annotations["ssl-prefer-server-ciphers"] == "true" else "off"
        if server.proxy_ssl is None and ca_file:
            server.proxy_ssl = server.locations[0] if server.locations[0].ingress == name else Location(
                "/", False, name, annotations, None, ca_file)
        if server.certificate is None:
            secret_name = next((t.get("secretName") for t in spec.get("tls", []) if host in t.get("hosts", [])), None)
            if spec.get("tls") and not secret_name:
                raise IngressError(f"Ingress {name}: no TLS secret for {host}: the controller's fake certificate")
            if secret_name:
                server.certificate = cluster.certificate(namespace, secret_name, host, name)
        for path in rule.get("http", {}).get("paths", []):
            location = Location(
                path.get("path") or "/", _path_type(path, name) == "Exact", name, annotations,
                cluster.upstream(namespace, path["backend"], name), ca_file,
            )
            _merge(server, location)


def _merge(server: Server, location: Location) -> None:
    for index, existing in enumerate(server.locations):
        if (existing.path, existing.exact) == (location.path, location.exact):
            if existing.upstream is None:
                server.locations[index] = location
            return
    server.locations.append(location)


def _sorted(locations: list[Location]) -> list[Location]:
    """controller.go: two stable sorts, by path descending, then by length descending."""
    by_path = sorted(locations, key=lambda loc: loc.path, reverse=True)
    return sorted(by_path, key=lambda loc: len(loc.path), reverse=True)


def _normalized(locations: list[Location]) -> list[Location]:
    exact_paths = {loc.path for loc in locations if loc.exact}
    result: list[Location] = []
    for location in locations:
        if location.path == "/" or location.exact:
            result.append(location)
            continue
        normalized = replace(location, path=location.path.rstrip("/") + "/")
        result.append(normalized)
        if location.path not in exact_paths:
            result.append(replace(location, exact=True))
    return result


# --------------------------------------------------------------------------- nginx.conf


def render_nginx_conf(servers: Sequence[Server], listen: Listen, state_dir: Path,
                      config: ControllerConfig = DEFAULT_CONTROLLER) -> str:
    """nginx.conf for ``servers``; the controller's /tmp/nginx (pid, temp paths) is ``state_dir``."""
    upstreams = {loc.upstream.name: loc.upstream for s in servers for loc in s.locations if loc.upstream}
    return "\n".join([
        _main(config, state_dir),
        "http {",
        _http(config, state_dir, listen),
        *(_upstream(upstream, config) for upstream in upstreams.values()),
        *(_server(server, listen, config) for server in servers),
        "}",
        "",
    ])


# config.go logFormatUpstream, and the protocol the client spoke (HTTP/2 or not).
LOG_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"'
    ' "$http_user_agent" $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name]'
    " $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id $server_protocol"
)


def _main(config: ControllerConfig, state_dir: Path) -> str:
    return f"""# Generated by tests/rehearsal/ingress_nginx.py as ingress-nginx controller-v1.12.8 would (nginx.tmpl).
daemon off;
worker_processes {config.worker_processes};
worker_shutdown_timeout 240s;
pid {state_dir}/nginx.pid;
error_log /dev/stderr {config.error_log_level};
events {{
    multi_accept        on;
    worker_connections  16384;
    use                 epoll;
}}"""


def _http(config: ControllerConfig, state_dir: Path, listen: Listen) -> str:
    return f"""    aio                 threads;
    aio_write           on;
    tcp_nopush          on;
    tcp_nodelay         on;
    log_subrequest      on;
    reset_timedout_connection on;
    keepalive_timeout  {config.keepalive_timeout}s;
    keepalive_requests {config.keepalive_requests};
    client_body_temp_path           {state_dir}/client-body;
    fastcgi_temp_path               {state_dir}/fastcgi-temp;
    proxy_temp_path                 {state_dir}/proxy-temp;
    client_header_buffer_size       1k;
    client_header_timeout           60s;
    large_client_header_buffers     4 8k;
    client_body_buffer_size         {config.client_body_buffer_size};
    client_body_timeout             60s;
    http2_max_concurrent_streams    {config.http2_max_concurrent_streams};
    types_hash_max_size             2048;
    server_names_hash_max_size      1024;
    server_names_hash_bucket_size   64;
    map_hash_bucket_size            64;
    proxy_headers_hash_max_size     512;
    proxy_headers_hash_bucket_size  64;
    variables_hash_bucket_size      256;
    variables_hash_max_size         2048;
    underscores_in_headers          off;
    ignore_invalid_headers          on;
    limit_req_status                503;
    limit_conn_status               503;
    include /etc/nginx/mime.types;
    default_type text/html;
    server_tokens off;
    uninitialized_variable_warn off;
    log_format upstreaminfo '{LOG_FORMAT}';
    access_log /dev/stdout upstreaminfo;
    map $http_upgrade $connection_upgrade {{
        default          upgrade;
        ''               '';
    }}
    map $http_x_request_id $req_id {{
        default   $http_x_request_id;
        ""        $request_id;
    }}
    server_name_in_redirect off;
    port_in_redirect        off;
    ssl_protocols {config.ssl_protocols};
    ssl_early_data off;
    ssl_session_cache shared:SSL:10m;
    ssl_session_timeout 10m;
    ssl_session_tickets off;
    ssl_buffer_size {config.ssl_buffer_size};
    ssl_ciphers '{config.ssl_ciphers}';
    ssl_prefer_server_ciphers on;
    ssl_ecdh_curve auto;
    proxy_ssl_session_reuse on;
    # lua_ingress.lua: X-Forwarded-Port is 443 on the HTTPS port; redirects go to the host without its
    # port and, by default, without a trailing slash; HSTS on every HTTPS answer.
    map $server_port $ingress_pass_port {{
        {listen.https_port} 443;
        default $server_port;
    }}
    map $http_host $redirect_host {{
        ~^(?<name>[^:]+) $name;
        default $host;
    }}
    map $request_uri $redirect_uri {{
        ~^(?<trimmed>.*)/$ $trimmed;
        default $request_uri;
    }}
    map $scheme $hsts {{
        https "{config.hsts}";
        default "";
    }}"""


def _upstream(upstream: Upstream, config: ControllerConfig) -> str:
    servers = "".join(f"        server {address};\n" for address in upstream.addresses)
    return f"""    upstream {upstream.name} {{
{servers}        keepalive {config.upstream_keepalive};
        keepalive_time {config.upstream_keepalive_time};
        keepalive_timeout {config.upstream_keepalive_timeout}s;
        keepalive_requests {config.upstream_keepalive_requests};
    }}"""


def _server(server: Server, listen: Listen, config: ControllerConfig) -> str:
    lines = [
        f"    ## start server {server.host}",
        "    server {",
        f"        server_name {server.host} ;",
        f"        listen {listen.address}:{listen.http_port} ;",
        f"        listen {listen.address}:{listen.https_port} ssl http2;",
        '        set $proxy_upstream_name "-";',
        "        add_header Strict-Transport-Security $hsts always;",
    ]
    if server.certificate:
        lines += [f"        ssl_certificate     {server.certificate};",
                  f"        ssl_certificate_key {server.certificate};"]
    if server.prefer_server_ciphers:
        lines.append(f"        ssl_prefer_server_ciphers               {server.prefer_server_ciphers};")
    if server.proxy_ssl:
        lines += [f"        {line}" for line in _server_proxy_ssl(server.proxy_ssl)]
    for location in server.locations:
        lines += [f"        {line}" for line in _location(location, server, config)]
    return "\n".join([*lines, "    }", f"    ## end server {server.host}"])


def _ssl_checks(location: Location) -> list[str]:
    a = location.annotations
    return [
        f"proxy_ssl_trusted_certificate           {location.ca_file};",
        f"proxy_ssl_ciphers                       {a['proxy-ssl-ciphers']};",
        f"proxy_ssl_protocols                     {a['proxy-ssl-protocols']};",
        f"proxy_ssl_verify                        {a['proxy-ssl-verify']};",
        f"proxy_ssl_verify_depth                  {a['proxy-ssl-verify-depth']};",
    ]


def _server_proxy_ssl(first: Location) -> list[str]:
    """nginx.tmpl, server block: the proxy_ssl_* defaults its locations inherit."""
    lines = _ssl_checks(first)
    if name := first.annotations["proxy-ssl-name"]:
        lines += [f"proxy_ssl_name                          {name};",
                  f"proxy_ssl_server_name                   {first.annotations['proxy-ssl-server-name']};"]
    return lines


def _location_proxy_ssl(location: Location, server: Server) -> list[str]:
    """nginx.tmpl, location block: the checks only with a CA; the name and SNI switch whenever
    proxy-ssl-secret resolved (the parser then sets proxy-ssl-server-name, ``off`` by default)."""
    a = location.annotations
    lines = _ssl_checks(location) if location.ca_file else []
    if a["proxy-ssl-name"]:
        lines.append(f"proxy_ssl_name                          {a['proxy-ssl-name']};")
    elif not (server.proxy_ssl and server.proxy_ssl.annotations["proxy-ssl-name"]):
        # Unset here and in the server, nginx checks the upstream block's name: the controller's one
        # upstream is called upstream_balancer (nginx ngx_http_upstream.c: u->ssl_name = uscf->host).
        lines.append("proxy_ssl_name                          upstream_balancer;")
    if location.ca_file:
        lines.append(f"proxy_ssl_server_name                   {a['proxy-ssl-server-name']};")
    return lines


def _location(location: Location, server: Server, config: ControllerConfig) -> list[str]:
    a = location.annotations
    head = f"location {'= ' if location.exact else ''}{location.path} {{"
    if location.upstream is None:
        # The default backend (the controller's internal server on port 8181).
        return [head, "    return 404;", "}"]
    lines = [
        head,
        f'    set $ingress_name "{location.ingress}";',
        f'    set $proxy_upstream_name "{location.upstream.name}";',
        '    set $proxy_alternative_upstream_name "";',
        "    set $proxy_host          $proxy_upstream_name;",
        "    set $pass_access_scheme  $scheme;",
        "    set $best_http_host      $http_host;",
        "    set $pass_port           $ingress_pass_port;",
        "    port_in_redirect off;",
    ]
    if a["ssl-redirect"] == "true" and server.certificate:
        redirect = f"return {config.http_redirect_code} https://$redirect_host$redirect_uri;"
        lines.append(f"    if ($scheme = http) {{ {redirect} }}")
    lines += [f"    {line}" for line in [*_proxy(location), *_location_proxy_ssl(location, server)]]
    return [*lines, "}"]


def _proxy(location: Location) -> list[str]:
    a = location.annotations
    assert location.upstream
    scheme = "https" if a["backend-protocol"] == "HTTPS" else "http"
    lines = [f"client_max_body_size                    {a['proxy-body-size']};"]
    if a["client-body-buffer-size"]:
        lines.append(f"client_body_buffer_size                 {a['client-body-buffer-size']};")
    lines += [
        "proxy_set_header Host                   $best_http_host;",
        "proxy_set_header                        Upgrade           $http_upgrade;",
        "proxy_set_header                        Connection        $connection_upgrade;",
        "proxy_set_header X-Request-ID           $req_id;",
        "proxy_set_header X-Real-IP              $remote_addr;",
        "proxy_set_header X-Forwarded-For        $remote_addr;",
        "proxy_set_header X-Forwarded-Host       $best_http_host;",
        "proxy_set_header X-Forwarded-Port       $pass_port;",
        "proxy_set_header X-Forwarded-Proto      $pass_access_scheme;",
        "proxy_set_header X-Forwarded-Scheme     $pass_access_scheme;",
        "proxy_set_header X-Scheme               $pass_access_scheme;",
        "proxy_set_header X-Original-Forwarded-For $http_x_forwarded_for;",
        'proxy_set_header Proxy                  "";',
        f"proxy_connect_timeout                   {a['proxy-connect-timeout']}s;",
        f"proxy_send_timeout                      {a['proxy-send-timeout']}s;",
        f"proxy_read_timeout                      {a['proxy-read-timeout']}s;",
        f"proxy_buffering                         {a['proxy-buffering']};",
        f"proxy_buffer_size                       {a['proxy-buffer-size']};",
        f"proxy_buffers                           {a['proxy-buffers-number']} {a['proxy-buffer-size']};",
        f"proxy_max_temp_file_size                {a['proxy-max-temp-file-size']};",
        f"proxy_request_buffering                 {a['proxy-request-buffering']};",
        f"proxy_http_version                      {a['proxy-http-version']};",
        "proxy_cookie_domain                     off;",
        "proxy_cookie_path                       off;",
        "proxy_next_upstream                     error timeout;",
        "proxy_next_upstream_timeout             0;",
        "proxy_next_upstream_tries               3;",
        f"proxy_pass {scheme}://{location.upstream.name};",
        "proxy_redirect                          off;",
    ]
    return lines
