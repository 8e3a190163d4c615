"""Metrics, rehearsed: the real registry's metrics endpoint counts a push made through the proxy, and the
proxy's status page answers on its own loopback port only, read there by the real nginx exporter."""

from __future__ import annotations

import http.client
import re
import socket

from tests.rehearsal.adapt import LOOPBACK
from tests.rehearsal.image import Image
from tests.rehearsal.rig import Rig, wait_until


def _get(port: int, path: str, address: str = LOOPBACK) -> tuple[int, str]:
    connection = http.client.HTTPConnection(address, port, timeout=5)
    try:
        connection.request("GET", path)
        answer = connection.getresponse()
        return answer.status, answer.read().decode()
    finally:
        connection.close()


def _samples(text: str, name: str) -> dict[str, float]:
    """Prometheus samples of metric ``name``: the label set (as written) -> value."""
    return {labels: float(value) for labels, value in re.findall(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M)}


def _registry_count(rig: Rig, labels: str) -> float:
    return _samples(_get(rig.ports.registry_debug, "/metrics")[1], "registry_http_requests_total").get(labels, 0.0)


def test_the_registry_counts_a_push_made_through_the_proxy(rig: Rig, small_image: Image) -> None:
    manifest_put = '{code="201",handler="manifest",method="put"}'
    blob_upload = '{code="201",handler="blob_upload_chunk",method="put"}'
    assert _registry_count(rig, manifest_put) == 0
    assert rig.login().returncode == 0
    assert (push := rig.push(small_image, "team/app")).returncode == 0, push.stderr

    assert _registry_count(rig, manifest_put) == 1
    # The layers and the config, each uploaded in one chunk.
    assert _registry_count(rig, blob_upload) == len(small_image.layer_digests) + 1
    # The push went through nginx: its access log has the manifest upload.
    assert wait_until(lambda: "PUT /v2/team/app/manifests/" in rig.proxy.log.read_text())
    storage = _samples(_get(rig.ports.registry_debug, "/metrics")[1], "registry_storage_action_seconds_count")
    assert any('action="PutContent"' in labels for labels in storage)


def test_the_proxy_status_answers_on_its_loopback_port_only(rig: Rig) -> None:
    status, body = _get(rig.ports.proxy_status, "/stub_status")
    assert status == 200 and body.startswith("Active connections:")
    assert _get(rig.ports.proxy_status, "/")[0] == 404

    # Not on the public port: there the path is an ordinary Portus page, answered by Portus.
    public = rig.request("GET", "/stub_status", base=rig.portal_url)
    assert public.status == 404 and b"Active connections" not in public.body
    assert any(r["path"] == "/stub_status" for r in rig.portus_requests())
    # Not on any other address of the host (in a pod: not on the pod's IP).
    with socket.socket() as other:
        other.settimeout(2)
        assert other.connect_ex(("127.0.0.2", rig.ports.proxy_status)) != 0


def test_the_exporter_turns_the_status_into_prometheus_metrics(rig: Rig) -> None:
    def requests() -> float:
        return _samples(_get(rig.ports.proxy_exporter, "/metrics")[1], "nginx_http_requests_total").get("", -1)

    metrics = _get(rig.ports.proxy_exporter, "/metrics")[1]
    assert _samples(metrics, "nginx_up") == {"": 1.0}
    exported = set(re.findall(r"^(nginx_\w+)", metrics, re.M))
    assert {"nginx_connections_accepted", "nginx_connections_handled"} <= exported
    before = requests()
    for _ in range(3):
        rig.request("GET", "/v2/")
    # Each scrape is a request too: at least the three made through the public port.
    assert requests() >= before + 3
