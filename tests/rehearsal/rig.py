"""One rehearsal of the platform: the rendered stack adapted under a directory, the Portus stand-in,
the registry and the edge's nginx (the proxy, or the ingress controller stand-in) started on free ports,
and the clients (skopeo, a plain HTTPS client) that reach them by the stack's own names."""

from __future__ import annotations

import base64
import contextlib
import functools
import http.client
import itertools
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest

from components.registry.config_file import HEALTH_PATH as REGISTRY_HEALTH_PATH
from components.registry.config_file import TLS_DIR as REGISTRY_TLS_DIR
from components.registry.storage import STORAGE_ROOT
from tests.rehearsal.adapt import LOOPBACK, Ports, adapt, address_of
from tests.rehearsal.corporate import issue, tls_secret
from tests.rehearsal.image import Image
from tests.rehearsal.ingress_nginx import DEFAULT_CONTROLLER, ControllerConfig
from tests.rehearsal.processes import Service, as_pod_user, child_env, free_port, run, with_hosts
from tests.rehearsal.standin import TOKEN_PATH, WEBHOOK_PATH
from tests.render import Rendered, load_stack_file, render_stack

REPO_ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = REPO_ROOT / "Pulumi.prod.yaml"
# The node-port range: the public port must be one the stack accepts.
NODE_PORTS = (30000, 32767)
SKOPEO_TIMEOUT = 300
EXPOSURES = ("nodePort", "ingress")


# The edge certificate sources the rehearsal runs with: the platform CA's, and a Secret with a certificate
# from a company's own CA (made here, unknown to the platform CA).
SOURCES = ("selfSigned", "secret")
CORPORATE_SECRET = "corporate-edge-tls"
# Each stack a rig can run: (exposure, edge certificate source).
EVERY_STACK = tuple(itertools.product(EXPOSURES, SOURCES))


def rigs(*stacks: tuple[str, str]) -> pytest.MarkDecorator:
    """Runs a test (or, as ``pytestmark``, a module's tests) on a rig of each of these stacks, instead of
    the proxy's with each certificate source."""
    return pytest.mark.parametrize("rig", stacks, indirect=True, ids="-".join)


def render_rehearsal_stack(exposure: str = "nodePort", source: str = "selfSigned", **overrides: object) -> Rendered:
    """The production example stack on a free public port, so the public names carry a port nginx can
    listen on: exposed on a node port (the proxy is the edge), or through its Ingresses (the ingress
    controller stand-in is); with the nodes' trust on and its edge certificate from ``source``;
    ``overrides`` set (or, with None, remove) keys. With ``secret``, the Secret a user would create comes
    with the rendered objects."""
    config, project, stack = load_stack_file(STACK_FILE)
    if exposure == "ingress":
        port = free_port()
    else:
        config = {k: v for k, v in config.items()
                  if not k.endswith((":ingressClassName", ":ingressControllerNamespace"))}
        port = free_port(*NODE_PORTS)
    config |= {
        f"{project}:exposure": exposure, f"{project}:publicPort": port,
        f"{project}:nodeTrust": {"enabled": True, "docker": True},
    }
    config |= {f"{project}:{key}": value for key, value in overrides.items()}
    corporate = None
    if source == "secret":
        corporate = issue([str(config[f"{project}:{key}"]) for key in ("host", "registryHost")])
        config[f"{project}:tls"] = {
            "source": "secret", "secretName": CORPORATE_SECRET, "caCertificate": corporate.root_pem,
        }
    else:
        assert source == "selfSigned", source
    rendered = render_stack({k: v for k, v in config.items() if v is not None}, project, stack)
    if corporate:
        rendered.objects.append(tls_secret(CORPORATE_SECRET, str(config[f"{project}:namespace"]), corporate))
    return rendered


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LoopbackHTTPS(http.client.HTTPSConnection):
    """HTTPS to a name (SNI, certificate check and Host header all use it) over 127.0.0.1, or to a
    loopback IP address (checked against the certificate's IP SANs)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=tls)
        self.tls = tls

    def connect(self) -> None:
        sock = socket.create_connection((address_of(self.host), self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def https(url: str, method: str = "GET", *, ca: Path, headers: Mapping[str, str] | None = None,
          body: bytes | None = None, timeout: float = 10) -> Response:
    """One request to ``url`` (a name reached on 127.0.0.1), trusting only the CA in ``ca``."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    connection = LoopbackHTTPS(parts.hostname, parts.port, ssl.create_default_context(cafile=str(ca)), timeout)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, dict(headers or {}))
        answer = connection.getresponse()
        return Response(answer.status, answer.headers, answer.read())
    finally:
        connection.close()


def wait_until(condition: Callable[[], bool], timeout: float = 15, interval: float = 0.1) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; its last value."""
    deadline = time.monotonic() + timeout
    while not (met := condition()) and time.monotonic() < deadline:
        time.sleep(interval)
    return met


def _distinct_free_ports(count: int) -> list[int]:
    """Free ports, no two alike: the kernel may hand out a port it just gave, once that socket closed."""
    ports: list[int] = []
    while len(ports) < count:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def _registry_healthy(debug_port: int) -> bool:
    try:
        with contextlib.closing(http.client.HTTPConnection(LOOPBACK, debug_port, timeout=2)) as connection:
            connection.request("GET", REGISTRY_HEALTH_PATH)
            return connection.getresponse().status == 200
    except OSError:
        return False


def _accepts(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((LOOPBACK, port)) == 0


class Rig:
    """The three services of one rehearsal (created stopped) and the clients that talk to them."""

    def __init__(self, rendered: Rendered, root: Path, registry_replicas: int = 1,
                 controller: ControllerConfig = DEFAULT_CONTROLLER) -> None:
        self.rendered = rendered
        self.root = root
        ports = _distinct_free_ports(6 + 2 * (registry_replicas - 1))
        self.ports = Ports(
            registry=ports[0], registry_debug=ports[1], portus=ports[2], plain_http=ports[3], proxy_status=ports[4],
            proxy_exporter=ports[5], more_registries=tuple(zip(ports[6::2], ports[7::2], strict=True)),
        )
        self.site = site = adapt(rendered, self.ports, root / "site", controller)
        outputs = rendered.outputs
        self.registry_host: str = outputs["registryHost"]
        self.portal_url: str = outputs["portalUrl"]
        self.username: str = outputs["adminUsername"]
        self.password: str = outputs["adminPassword"]
        self.ca_file = site.ca_dir / "ca.crt"
        self.record = root / "portus-requests.jsonl"
        self.record.touch()
        self.home = root / "home"
        self.home.mkdir()
        self.authfile = self.home / "auth.json"
        logs = root / "logs"
        logs.mkdir()
        self.portus = Service(
            "portus", [*site.portus.argv, "--record", str(self.record), "--user", f"{self.username}:{self.password}"],
            child_env({**site.portus.env, "PYTHONPATH": str(REPO_ROOT)}), logs / "portus.log",
            lambda: _accepts(self.ports.portus),
        )
        # Each registry replica's environment is the pod's alone (child_env): an AWS_CA_BUNDLE, say, from
        # the caller's would change how Distribution's S3 client starts.
        self.registries = []
        for index, (workload, (_, debug_port)) in enumerate(zip(site.registries, self.ports.registries, strict=True)):
            name = "registry" if index == 0 else f"registry-{index}"
            self.registries.append(Service(
                name, with_hosts(as_pod_user(workload.argv, workload.user), site.hosts_file), child_env(workload.env),
                logs / f"{name}.log", functools.partial(_registry_healthy, debug_port),
            ))
        self.registry = self.registries[0]
        self.edge = Service(
            site.edge.name, site.edge.argv, child_env(site.edge.env), logs / f"{site.edge.name}.log",
            self._edge_answers,
        )
        self.services = [self.portus, *self.registries, self.edge]
        # The proxy pod's sidecars, where the proxy is the edge.
        self.exporter: Service | None = None
        self.reloader: Service | None = None
        if proxy := site.proxy:
            self.exporter = Service(
                "exporter", proxy.exporter.argv, child_env(proxy.exporter.env), logs / "exporter.log",
                lambda: _accepts(self.ports.proxy_exporter),
            )
            reloader_log = logs / "reloader.log"
            self.reloader = Service(
                "reloader", as_pod_user(proxy.reloader.argv, proxy.reloader.user), child_env(proxy.reloader.env),
                reloader_log, lambda: "watching" in reloader_log.read_text(),
            )
            self.services += [self.exporter, self.reloader]

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        for service in self.services:
            service.start()

    def stop(self) -> None:
        errors = []
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception as exc:  # stop the others all the same
                errors.append(exc)
        if errors:
            raise errors[0]

    def tls_files(self, service: Service) -> tuple[Path, Path]:
        """The certificate and key the registry or the Portus stand-in serves."""
        if service is self.registry:
            tls_dir = self.site.registry.path(REGISTRY_TLS_DIR)
            return tls_dir / "tls.crt", tls_dir / "tls.key"
        return Path(self.site.portus.env["PORTUS_PUMA_TLS_CERT"]), Path(self.site.portus.env["PORTUS_PUMA_TLS_KEY"])

    def present(self, service: Service, cert_pem: str, key_pem: str) -> None:
        """Restart the registry or the Portus stand-in serving another certificate."""
        cert, key = self.tls_files(service)
        service.stop()
        cert.write_text(cert_pem)
        key.write_text(key_pem)
        service.start()

    def logs(self) -> str:
        """The last lines each service logged."""
        return "\n".join(f"=== {s.name} ===\n{s.log_tail()}" for s in self.services)

    @property
    def storage(self) -> Path:
        return self.site.registry.path(STORAGE_ROOT)

    @property
    def edge_runtime(self) -> Path:
        """The parent of the edge nginx's temp dirs (the proxy pod's emptyDir, the controller's /tmp/nginx)."""
        return self.site.edge.runtime

    def _edge_answers(self) -> bool:
        """nginx answers HTTPS on the public port (whatever the upstream says)."""
        try:
            return self.request("GET", "/v2/", timeout=2).status > 0
        except OSError:
            return False

    # ------------------------------------------------------------------ HTTPS through the edge

    @property
    def registry_url(self) -> str:
        return f"https://{self.registry_host}"

    def request(self, method: str, path: str, *, base: str | None = None, ca: Path | None = None,
                headers: Mapping[str, str] | None = None, body: bytes | None = None, timeout: float = 10) -> Response:
        """A request to the public registry name (or ``base``), i.e. to the edge."""
        return https((base or self.registry_url) + path, method, ca=ca or self.ca_file, headers=headers, body=body,
                     timeout=timeout)

    def token(self, *scopes: str) -> Response:
        """Ask the token endpoint (through the edge) as the admin user, as a Docker client would."""
        query = urlencode([("service", self.registry_host), *(("scope", s) for s in scopes)])
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return self.request("GET", f"{TOKEN_PATH}?{query}", base=self.portal_url,
                            headers={"Authorization": f"Basic {basic}"})

    # ------------------------------------------------------------------ what the stand-in saw

    def portus_requests(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def events(self) -> list[dict[str, Any]]:
        """Registry events posted to the webhook, in order."""
        return [
            event
            for entry in self.portus_requests()
            if entry["method"] == "POST" and entry["path"] == WEBHOOK_PATH
            for event in json.loads(entry["body"])["events"]
        ]

    def wait_for_events(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 15) -> list[dict[str, Any]]:
        """The events matching ``predicate``, once there is one (or none after ``timeout``)."""
        wait_until(lambda: any(predicate(e) for e in self.events()), timeout)
        return [e for e in self.events() if predicate(e)]

    # ------------------------------------------------------------------ skopeo

    def skopeo(self, *args: str, stdin: str | None = None, timeout: float = SKOPEO_TIMEOUT
               ) -> subprocess.CompletedProcess[str]:
        # --insecure-policy: no image-signature policy file to read; TLS is verified as always.
        argv = with_hosts(["skopeo", "--insecure-policy", *args], self.site.hosts_file)
        return run(argv, child_env({"HOME": str(self.home)}), timeout, stdin)

    def login(self, password: str | None = None, cert_dir: Path | None = None,
              registry: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.skopeo(
            "login", "--authfile", str(self.authfile), "--cert-dir", str(cert_dir or self.site.ca_dir),
            "--username", self.username, "--password-stdin", registry or self.registry_host,
            stdin=password or self.password, timeout=60,
        )

    def push(self, image: Image, repository: str, registry: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.skopeo(
            "copy", "--authfile", str(self.authfile), "--dest-cert-dir", str(self.site.ca_dir),
            image.reference, f"docker://{registry or self.registry_host}/{repository}:{image.tag}",
        )

    def pull(
        self, repository: str, tag: str, registry: str | None = None
    ) -> tuple[Path, subprocess.CompletedProcess[str]]:
        """Copy an image from the registry into a fresh ``dir:`` directory."""
        destination = self.root / "pulled" / f"{repository.replace('/', '_')}-{time.monotonic_ns()}"
        destination.mkdir(parents=True)
        # --remove-signatures: the test images are unsigned, and skopeo would look for signatures in root's
        # /var/lib/containers/sigstore, which a user namespace's root may not read.
        done = self.skopeo(
            "copy", "--remove-signatures", "--authfile", str(self.authfile), "--src-cert-dir", str(self.site.ca_dir),
            f"docker://{registry or self.registry_host}/{repository}:{tag}", f"dir:{destination}",
        )
        return destination, done


@contextlib.contextmanager
def running(rendered: Rendered, parent: Path | None = None, registry_replicas: int = 1,
            controller: ControllerConfig = DEFAULT_CONTROLLER) -> Iterator[Rig]:
    """A started rig in a fresh directory under ``parent``; stopped and removed on exit. ``controller`` is
    the ingress controller's ConfigMap, with exposure ingress."""
    with tempfile.TemporaryDirectory(prefix="rehearsal-", dir=parent) as root:
        # The servers run under their pods' UIDs: they must reach their files below.
        os.chmod(root, 0o755)
        rig = Rig(rendered, Path(root), registry_replicas, controller)
        try:
            rig.start()
            yield rig
        finally:
            rig.stop()
