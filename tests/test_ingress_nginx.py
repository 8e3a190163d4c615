"""The ingress-nginx stand-in (tests/rehearsal/ingress_nginx.py) reads the rendered Ingresses as the
controller does, and refuses what the controller would not serve as written. The rehearsal runs the
nginx.conf it writes with the real nginx."""

from __future__ import annotations

import copy
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from tests.objects import Obj, get
from tests.rehearsal.ingress_nginx import (
    DEFAULT_CONTROLLER,
    PREFIX,
    IngressError,
    Listen,
    Server,
    build_servers,
    render_nginx_conf,
)
from tests.render import Rendered

ENDPOINTS = {"portus": ["127.0.0.1:3000"], "registry": ["127.0.0.1:5000"]}


def _servers(objects: list[Obj], tmp_path: Path, created: tuple[str, ...] | None = None) -> list[Server]:
    return build_servers(objects, "nginx", ENDPOINTS, tmp_path, created)


def _routing(server: Server) -> list[tuple[str, bool, str, str | None]]:
    return [(loc.path, loc.exact, loc.ingress, loc.upstream.service if loc.upstream else None)
            for loc in server.locations]


def test_the_program_s_ingresses_become_one_server_per_public_host(prod: Rendered, tmp_path: Path) -> None:
    servers = _servers(prod.objects, tmp_path)
    assert [server.host for server in servers] == ["portus.example.com", "registry.example.com"]
    for server in servers:
        # Longest path first; each Prefix path also served exactly (location.go updateServerLocations).
        assert _routing(server) == [
            ("/v2/webhooks/events", True, "portus/portus-token", "portus"),
            ("/v2/token", True, "portus/portus-token", "portus"),
            ("/v2/", False, "portus/portus-registry", "registry"),
            ("/v2/", True, "portus/portus-registry", "registry"),
            ("/", False, "portus/portus", "portus"),
        ]
        assert server.certificate is not None and server.certificate.read_text().count("BEGIN") == 2
        assert server.prefer_server_ciphers == "off"
        registry = next(loc for loc in server.locations if loc.path == "/v2/")
        assert registry.annotations["proxy-request-buffering"] == "off"
        assert registry.annotations["proxy-ssl-name"] == "registry.portus.svc.cluster.local"
        assert registry.ca_file and registry.ca_file.read_text() == prod.outputs["caCertificate"]


def test_the_order_the_ingresses_were_created_in_changes_no_route(prod: Rendered, tmp_path: Path) -> None:
    names = tuple(ingress["metadata"]["name"] for ingress in prod.objects_of("Ingress"))
    routings = {
        tuple(tuple(_routing(server)) for server in _servers(prod.objects, tmp_path, order))
        for order in itertools.permutations(names)
    }
    assert len(routings) == 1


def _with_annotation(rendered: Rendered, ingress: str, key: str, value: str | None) -> list[Obj]:
    objects = copy.deepcopy(rendered.objects)
    annotations: dict[str, Any] = get(Rendered(objects, {}, [], []), "Ingress", ingress)["metadata"]["annotations"]
    if value is None:
        annotations.pop(PREFIX + key)
    else:
        annotations[PREFIX + key] = value
    return objects


@pytest.mark.parametrize(("ingress", "key", "value", "message"), [
    ("portus-registry", "configuration-snippet", "more_set_headers 'X: y';", "not emulated"),
    ("portus-registry", "proxy-read-timeout", "900s", "would use its default (60)"),
    ("portus-registry", "proxy-body-size", "10b", "would use its default (1m)"),
    ("portus-registry", "proxy-buffer-size", "1g", "would use its default (4k)"),
    ("portus", "proxy-ssl-verify", "yes", "would use its default (off)"),
    ("portus", "ssl-redirect", "yes", "would use its default (true)"),
    ("portus-token", "backend-protocol", "HTTP2", "would use its default (HTTP)"),
    ("portus-token", "backend-protocol", "GRPCS", "not emulated"),
])
def test_annotations_the_controller_would_not_apply_are_refused(prod: Rendered, tmp_path: Path, ingress: str,
                                                                key: str, value: str, message: str) -> None:
    with pytest.raises(IngressError, match=re.escape(message)):
        _servers(_with_annotation(prod, ingress, key, value), tmp_path)


def test_proxy_ssl_settings_without_their_secret_are_refused(prod: Rendered, tmp_path: Path) -> None:
    # The controller reads proxy-ssl-* only when proxy-ssl-secret resolves (proxyssl/main.go Parse).
    with pytest.raises(IngressError, match="ignored without proxy-ssl-secret"):
        _servers(_with_annotation(prod, "portus", "proxy-ssl-secret", None), tmp_path)


def test_a_ca_secret_the_controller_cannot_read_is_refused(prod: Rendered, tmp_path: Path) -> None:
    # The controller denies the location (return 503) for a missing Secret or one in another namespace.
    with pytest.raises(IngressError, match="does not exist"):
        _servers(_with_annotation(prod, "portus", "proxy-ssl-secret", "portus/missing"), tmp_path)
    with pytest.raises(IngressError, match="not in its namespace"):
        _servers(_with_annotation(prod, "portus", "proxy-ssl-secret", "kube-system/portus-trust-bundle-secret"),
                 tmp_path)


def test_a_tls_secret_that_does_not_name_the_host_is_refused(dev: Rendered, prod: Rendered, tmp_path: Path) -> None:
    # The controller would serve its fake certificate for that host (controller.go createServers).
    objects = copy.deepcopy(prod.objects)
    edge = get(Rendered(objects, {}, [], []), "Secret", "proxy-tls")
    edge["stringData"] = get(dev, "Secret", "proxy-tls")["stringData"]
    with pytest.raises(IngressError, match=re.escape("does not name portus.example.com")):
        _servers(objects, tmp_path)


def test_a_backend_service_port_that_does_not_exist_is_refused(prod: Rendered, tmp_path: Path) -> None:
    objects = copy.deepcopy(prod.objects)
    registry = get(Rendered(objects, {}, [], []), "Ingress", "portus-registry")
    registry["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"] = 443
    with pytest.raises(IngressError, match="has no port 443"):
        _servers(objects, tmp_path)


def test_the_controller_s_configmap_changes_its_http_block(prod: Rendered, tmp_path: Path) -> None:
    tuned = DEFAULT_CONTROLLER.with_configmap({"ssl-buffer-size": "16k", "upstream-keepalive-connections": "64"})
    servers = _servers(prod.objects, tmp_path)
    listen = Listen("127.0.0.1", 8443, 8080)
    assert "ssl_buffer_size 4k;" in render_nginx_conf(servers, listen, tmp_path)
    conf = render_nginx_conf(servers, listen, tmp_path, tuned)
    assert "ssl_buffer_size 16k;" in conf and "keepalive 64;" in conf
    with pytest.raises(IngressError, match="server-snippet is not emulated"):
        DEFAULT_CONTROLLER.with_configmap({"server-snippet": "return 200;"})
    with pytest.raises(IngressError, match="ssl-buffer-size"):
        DEFAULT_CONTROLLER.with_configmap({"ssl-buffer-size": "1g"})
