"""A renewed edge certificate reaches clients without a restart: the certificate files change under the
running nginx the way the kubelet changes a mounted Secret, the proxy pod's reloader has nginx reload,
new handshakes present the new certificate, and a layer download in flight finishes intact."""

from __future__ import annotations

import hashlib
import os
import ssl
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import Encoding

from components.edge.nginx_conf import TLS_DIR
from tests.rehearsal.corporate import issue
from tests.rehearsal.image import build_image
from tests.rehearsal.rig import LoopbackHTTPS, Rig, wait_until

MIB = 1 << 20
# Far more than the socket buffers between nginx and the client hold: the download is still being sent
# while nginx reloads.
LAYER_SIZE = 48 * MIB


def swap_secret_files(directory: Path, files: Mapping[str, str]) -> None:
    """Replace a mounted Secret's files at once, as the kubelet's atomic writer does: each file name is a
    link through ``..data``, and one rename of ``..data`` switches every file to the new version."""
    if not (directory / "..data").is_symlink():
        # The adapted volume holds plain files: first the same content in the kubelet's layout.
        _publish(directory, {name: (directory / name).read_text() for name in files})
        for name in files:
            staged = directory / f"..{name}.link"
            staged.symlink_to(f"..data/{name}")
            os.replace(staged, directory / name)
    _publish(directory, files)


def _publish(directory: Path, files: Mapping[str, str]) -> None:
    version = directory / f"..{time.time_ns()}"
    version.mkdir()
    for name, content in files.items():
        (version / name).write_text(content)
    staged = directory / "..data.link"
    staged.symlink_to(version.name)
    os.replace(staged, directory / "..data")


def _registry_name(rig: Rig) -> str:
    return str(urlsplit(f"//{rig.registry_host}").hostname)


def _presented(rig: Rig, trusted: Path) -> bytes | None:
    """The certificate a new handshake on the registry's name presents, if it verifies against ``trusted``."""
    tls = ssl.create_default_context(cafile=str(trusted))
    connection = LoopbackHTTPS(_registry_name(rig), rig.site.public_port, tls, timeout=5)
    try:
        connection.connect()
        assert connection.sock is not None
        return connection.sock.getpeercert(binary_form=True)
    except ssl.SSLCertVerificationError:
        return None
    finally:
        connection.close()


def test_a_renewed_certificate_reaches_new_handshakes_while_a_download_finishes(rig: Rig, tmp_path: Path) -> None:
    image = build_image(tmp_path / "image", [LAYER_SIZE], seed=11)
    assert rig.login().returncode == 0
    assert (push := rig.push(image, "team/renewal")).returncode == 0, push.stderr
    token = rig.token("repository:team/renewal:pull").json()["token"]
    [layer] = image.layer_digests

    download = LoopbackHTTPS(_registry_name(rig), rig.site.public_port,
                              ssl.create_default_context(cafile=str(rig.ca_file)), timeout=60)
    download.request("GET", f"/v2/team/renewal/blobs/{layer}", headers={"Authorization": f"Bearer {token}"})
    answer = download.getresponse()
    assert answer.status == 200
    received = hashlib.sha256(answer.read(MIB))
    master = rig.edge.pid

    renewed = issue([_registry_name(rig), str(urlsplit(rig.portal_url).hostname)])
    (tmp_path / "renewed-ca.crt").write_text(renewed.root_pem)
    assert rig.site.proxy and rig.reloader
    swap_secret_files(rig.site.proxy.nginx.path(TLS_DIR), {"tls.crt": renewed.chain_pem, "tls.key": renewed.key_pem})

    new_certificate = renewed.leaf.public_bytes(Encoding.DER)
    assert wait_until(lambda: _presented(rig, tmp_path / "renewed-ca.crt") == new_certificate, timeout=40), (
        "nginx still presents the old certificate"
    )
    assert _presented(rig, rig.ca_file) is None, "the old chain still verifies a new handshake"

    # The transfer that started before the reload ends intact, from the same nginx master.
    while chunk := answer.read(MIB):
        received.update(chunk)
    download.close()
    assert f"sha256:{received.hexdigest()}" == layer
    assert rig.edge.pid == master and rig.edge.process is not None and rig.edge.process.poll() is None
    assert "nginx reloaded" in rig.reloader.log.read_text()
