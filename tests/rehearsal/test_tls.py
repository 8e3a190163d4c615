"""TLS at every hop: clients verify the edge with the platform CA alone, and the edge's nginx (the proxy,
or the ingress controller as the Ingresses' annotations configure it) verifies the registry and Portus
(CA and name) before it forwards anything."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from tests.rehearsal.impostors import impostor_of
from tests.rehearsal.rig import EVERY_STACK, Rig, rigs
from tests.rehearsal.standin import TOKEN_PATH


@rigs(*EVERY_STACK)
def test_edge_is_trusted_through_the_ca_certificate_output_only(rig: Rig, tmp_path: Path) -> None:
    assert rig.request("GET", "/v2/").status == 401
    assert rig.request("GET", "/", base=rig.portal_url).status == 200

    other_cas = [impostor_of(rig.ca_file.read_text()).ca_pem]
    platform_ca = rig.site.edge.platform_ca.read_text()
    if platform_ca != rig.ca_file.read_text():
        # A certificate from the company's CA: the platform CA, which secures the hops inside, does not do.
        other_cas.append(platform_ca)
    for index, ca_pem in enumerate(other_cas):
        other_ca = tmp_path / f"other-ca-{index}"
        other_ca.mkdir()
        (other_ca / "ca.crt").write_text(ca_pem)
        with pytest.raises(ssl.SSLCertVerificationError):
            rig.request("GET", "/v2/", ca=other_ca / "ca.crt")
        login = rig.login(cert_dir=other_ca)
        assert login.returncode != 0
        assert "certificate signed by unknown authority" in login.stderr
    assert rig.login().returncode == 0


def test_the_service_names_get_the_platform_certificate(rig: Rig) -> None:
    """What in-cluster clients verify on their hop to the proxy: the proxy's Service name, against the
    platform CA, whatever signs the edge."""
    assert rig.site.proxy
    platform_ca = rig.site.edge.platform_ca
    service_name = next(
        name for name in rig.site.proxy.service_names if name.count(".") == 4  # proxy.<ns>.svc.<domain>
    )
    base = f"https://{service_name}:{rig.site.public_port}"
    assert rig.request("GET", "/healthz", base=base, ca=platform_ca).status == 200
    assert rig.request("GET", "/v2/", base=base, ca=platform_ca).status == 401


@rigs(*EVERY_STACK)
def test_edge_refuses_a_registry_certificate_from_another_ca(rig: Rig) -> None:
    assert rig.request("GET", "/v2/").status == 401
    cert, _ = rig.tls_files(rig.registry)
    impostor = impostor_of(cert.read_text())
    rig.present(rig.registry, impostor.cert_pem, impostor.key_pem)

    assert rig.request("GET", "/v2/").status == 502
    assert "upstream SSL certificate verify error" in rig.edge.log.read_text()


@rigs(*EVERY_STACK)
def test_edge_refuses_a_portus_certificate_from_another_ca(rig: Rig) -> None:
    assert rig.token().status == 200
    cert, _ = rig.tls_files(rig.portus)
    impostor = impostor_of(cert.read_text())
    rig.present(rig.portus, impostor.cert_pem, impostor.key_pem)

    assert rig.token().status == 502
    assert rig.request("GET", "/", base=rig.portal_url).status == 502
    # Only the first token request got through to Portus.
    assert len([r for r in rig.portus_requests() if r["path"].startswith(TOKEN_PATH)]) == 1


@rigs(*EVERY_STACK)
def test_edge_checks_the_registry_certificate_name(rig: Rig) -> None:
    # Portus's certificate comes from the platform CA too, but names Portus, not the registry.
    cert, key = rig.tls_files(rig.portus)
    rig.present(rig.registry, cert.read_text(), key.read_text())

    assert rig.request("GET", "/v2/").status == 502
    assert "upstream SSL certificate does not match" in rig.edge.log.read_text()
