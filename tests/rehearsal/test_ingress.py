"""What only the Ingress path has: Portus answering its own token realm under the public name inside the
cluster, the controller's redirect from plain HTTP and HSTS, the client's choice of cipher, and HTTP/2,
which the controller offers to every client (skopeo does not take it up, curl does): layers go up and
down through memory there too."""

from __future__ import annotations

import hashlib
import http.client
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.rehearsal.adapt import LOOPBACK
from tests.rehearsal.proxy_stats import temp_files_used
from tests.rehearsal.rig import Rig, https, rigs
from tests.rehearsal.standin import TOKEN_PATH

pytestmark = rigs(("ingress", "selfSigned"))
MIB = 1 << 20


def test_portus_answers_the_token_realm_under_the_public_name(rig: Rig) -> None:
    # Inside Portus's pods the realm's host resolves to the Service portus-realm, which sends the public
    # port to Portus: the same request, with the same name checked in Portus's own certificate.
    realm_host = rig.portal_url.removeprefix("https://").split(":")[0]
    realm = f"https://{realm_host}:{rig.ports.portus}{TOKEN_PATH}?service={rig.registry_host}"
    assert https(realm, ca=rig.ca_file).status == 401  # no credentials: Portus itself answers
    assert [r["path"] for r in rig.portus_requests()] == [TOKEN_PATH + f"?service={rig.registry_host}"]


def test_plain_http_is_redirected_to_https(rig: Rig) -> None:
    connection = http.client.HTTPConnection(LOOPBACK, rig.ports.plain_http, timeout=10)
    try:
        connection.request("GET", "/v2/", headers={"Host": rig.registry_host})
        answer = connection.getresponse()
    finally:
        connection.close()
    registry_name = rig.registry_host.split(":")[0]
    # ingress-nginx's Lua: 308, the host without its port, the trailing slash dropped.
    assert (answer.status, answer.headers["Location"]) == (308, f"https://{registry_name}/v2")
    assert rig.request("GET", "/v2/").headers["Strict-Transport-Security"].startswith("max-age=")


def _curl(rig: Rig, method: str, path: str, token: str, upload: Path | None = None,
          download: Path | None = None) -> tuple[str, str, str]:
    """One HTTP/2 request to the registry's public name; (HTTP version, status, Location)."""
    host, port = rig.registry_host.rsplit(":", 1)
    argv = [
        "curl", "--http2", "--silent", "--show-error", "--cacert", str(rig.ca_file),
        "--resolve", f"{host}:{port}:{LOOPBACK}", "--request", method,
        "--header", f"Authorization: Bearer {token}", "--output", str(download or os.devnull),
        "--write-out", "%{http_version} %{http_code} %header{location}", f"https://{rig.registry_host}{path}",
    ]
    if upload:
        argv[1:1] = ["--header", "Content-Type: application/octet-stream", "--data-binary", f"@{upload}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    version, status, *location = done.stdout.split()
    return version, status, "".join(location)


@pytest.mark.parametrize("size", [48 << 10, 16 * MIB], ids=["small", "large"])
def test_http2_uploads_and_downloads_stay_in_memory(rig: Rig, tmp_path: Path, size: int) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(os.urandom(size))
    digest = f"sha256:{hashlib.sha256(blob.read_bytes()).hexdigest()}"
    token = rig.token("repository:team/h2:pull,push").json()["token"]
    copy = tmp_path / "copy"
    with temp_files_used(rig.edge_runtime, rig.edge.pid) as temp_files:
        version, status, upload = _curl(rig, "POST", "/v2/team/h2/blobs/uploads/", token)
        assert (version, status) == ("2", "202")
        # A monolithic upload: the whole blob in the body of one PUT.
        upload_path = urlsplit(upload)._replace(scheme="", netloc="").geturl()
        put = _curl(rig, "PUT", f"{upload_path}&digest={digest}", token, upload=blob)
        assert put[:2] == ("2", "201")
        assert _curl(rig, "GET", f"/v2/team/h2/blobs/{digest}", token, download=copy)[:2] == ("2", "200")
    assert copy.read_bytes() == blob.read_bytes()
    assert not temp_files
    assert "buffered to a temporary file" not in rig.edge.log.read_text()


def test_clients_choose_their_cipher(rig: Rig) -> None:
    # A client that asks for AES-128-GCM first (as Go's does on CPUs with AES instructions) gets it; the
    # controller's own preference would give every client AES-256-GCM, a fifth more CPU per MiB.
    host, port = rig.registry_host.rsplit(":", 1)
    hello = subprocess.run(
        ["openssl", "s_client", "-connect", f"{LOOPBACK}:{port}", "-servername", host, "-CAfile", str(rig.ca_file),
         "-ciphersuites", "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384", "-verify_return_error"],
        input="", capture_output=True, text=True, timeout=30, check=False,
    )
    assert "Cipher is TLS_AES_128_GCM_SHA256" in hello.stdout, hello.stdout + hello.stderr
