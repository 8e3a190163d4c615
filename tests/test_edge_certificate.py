"""Where the edge certificate comes from (``tls``): each source's Secret is the one the Ingresses or the
proxy serve, the chain clients must trust is what the outputs and Portus's trust bundle carry, the
platform CA keeps the hops inside the cluster, and the cert-manager Certificate is valid against
cert-manager's own CRD and awaited before anything uses its Secret."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from functools import cache

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from components.edge.certificate import CertManagerCertificate, IssuerRef
from tests.conftest import MINIMAL_CONFIG
from tests.doubles import ResourceRecord
from tests.objects import Obj, container, get, pod_spec, secret_data
from tests.rehearsal.corporate import issue
from tests.render import Rendered, render_stack
from tests.schema import validate_objects

PUBLIC = {"host": "portus.example.com", "registryHost": "registry.example.com"}
SERVICE_NAMES = {"proxy", "proxy.portus", "proxy.portus.svc", "proxy.portus.svc.cluster.local"}


@cache
def corporate_ca() -> str:
    return issue(["portus.example.com"]).root_pem


@pytest.fixture(scope="module")
def from_secret(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**MINIMAL_CONFIG, **PUBLIC, "tls": {
        "source": "secret", "secretName": "corporate-tls", "caCertificate": corporate_ca(),
    }})


@pytest.fixture(scope="module")
def from_public_ca(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**MINIMAL_CONFIG, **PUBLIC, "exposure": "loadBalancer",
                   "tls": {"source": "secret", "secretName": "public-tls"}})


CERT_MANAGER = {
    "source": "certManager", "issuer": {"name": "letsencrypt", "kind": "ClusterIssuer"},
    "duration": "2160h", "renewBefore": "720h",
}


@pytest.fixture(scope="module")
def from_cert_manager(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**MINIMAL_CONFIG, **PUBLIC, "tls": CERT_MANAGER})


@pytest.fixture(scope="module")
def from_cert_manager_behind_proxy(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**MINIMAL_CONFIG, **PUBLIC, "exposure": "loadBalancer", "tls": CERT_MANAGER})


def _sans(pem: str) -> set[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    return set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName
    ))


def _proxy_secrets(rendered: Rendered) -> dict[str, str]:
    """Volume name -> Secret of the proxy pod's two certificates."""
    volumes = pod_spec(get(rendered, "Deployment", "proxy"))["volumes"]
    return {v["name"]: v["secret"]["secretName"] for v in volumes if v["name"] in ("tls", "platform-tls")}


def _ingress_secrets(rendered: Rendered) -> set[str]:
    """The Secrets the Ingresses serve (exposure ingress): one edge certificate for all."""
    return {tls["secretName"] for ingress in rendered.objects_of("Ingress") for tls in ingress["spec"]["tls"]}


def _record(rendered: Rendered, type_token: str) -> ResourceRecord:
    return next(r for r in rendered.resources if r.type == type_token)


def test_secret_source_serves_the_users_secret_and_no_generated_edge_certificate(from_secret: Rendered) -> None:
    assert _ingress_secrets(from_secret) == {"corporate-tls"}
    # The platform's certificate names the proxy's Service only: the public names get the user's.
    assert _sans(secret_data(get(from_secret, "Secret", "proxy-tls"))["tls.crt"]) == SERVICE_NAMES
    assert not [s for s in from_secret.objects_of("Secret") if s["metadata"]["name"] == "corporate-tls"]
    assert from_secret.outputs["caCertificate"] == corporate_ca()
    assert set(from_secret.outputs["caInstallPaths"]) == {"docker", "containerd", "podman"}
    # Inside, everything still trusts the platform CA alone.
    platform_ca = get(from_secret, "ConfigMap", "portus-trust-bundle")["data"]["ca.crt"]
    assert platform_ca != corporate_ca()
    assert secret_data(get(from_secret, "Secret", "portus-trust-bundle-secret"))["ca.crt"] == platform_ca


def test_edge_signed_by_a_public_ca_needs_nothing_installed(from_public_ca: Rendered) -> None:
    assert "caCertificate" not in from_public_ca.outputs
    assert "caInstallPaths" not in from_public_ca.outputs
    assert get(from_public_ca, "ConfigMap", "portus-edge-trust")["data"]["ca.crt"] == ""
    assert _proxy_secrets(from_public_ca)["tls"] == "public-tls"


@pytest.mark.parametrize("source", ["dev", "from_secret", "from_public_ca", "from_cert_manager"])
def test_portus_trusts_the_system_roots_the_edge_chain_and_the_platform_ca(
    source: str, request: pytest.FixtureRequest
) -> None:
    """Portus's pods reach the token realm under the public name: through the proxy, or (exposure ingress)
    at Portus itself, whose certificate the platform CA signs; one bundle serves both."""
    rendered: Rendered = request.getfixturevalue(source)
    edge_trust = get(rendered, "ConfigMap", "portus-edge-trust")["data"]["ca.crt"]
    platform_ca = get(rendered, "ConfigMap", "portus-trust-bundle")["data"]["ca.crt"]
    # What the edge needs beyond the platform CA, which the bundle has anyway.
    edge_chain = rendered.outputs.get("caCertificate", "")
    assert edge_trust == ("" if edge_chain == platform_ca else edge_chain)
    for workload in [get(rendered, "Deployment", "portus"), get(rendered, "Deployment", "portus-background"),
                     *rendered.objects_of("Job")]:
        init = next(c for c in pod_spec(workload)["initContainers"] if c["name"] == "ca-bundle")
        mounts = {m["name"]: m["mountPath"] for m in init["volumeMounts"]}
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        assert volumes["edge-trust"]["configMap"]["name"] == "portus-edge-trust"
        assert volumes["trust"]["configMap"]["name"] == "portus-trust-bundle"
        bundle = re.fullmatch(r"\{ cat (\S+) \|\| .*; cat (\S+) (\S+); \} > (\S+)", init["command"][-1])
        assert bundle, init["command"][-1]
        assert bundle[1] == "/var/lib/ca-certificates/ca-bundle.pem"
        assert (bundle[2], bundle[3]) == (f"{mounts['trust']}/ca.crt", f"{mounts['edge-trust']}/ca.crt")


def test_a_changed_ca_certificate_rolls_the_portus_pods(
    render: Callable[[Mapping[str, object]], Rendered], from_secret: Rendered
) -> None:
    other = render({**MINIMAL_CONFIG, **PUBLIC, "tls": {
        "source": "secret", "secretName": "corporate-tls", "caCertificate": issue(["x.example.com"]).root_pem,
    }})
    for name in ("portus", "portus-background"):
        before = get(from_secret, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        after = get(other, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert before["checksum/trust"] != after["checksum/trust"]


def test_cert_manager_certificate_names_the_public_hosts_and_rotates_its_key(from_cert_manager: Rendered) -> None:
    certificate = get(from_cert_manager, "Certificate", "edge")
    assert certificate["apiVersion"] == "cert-manager.io/v1"
    spec = certificate["spec"]
    assert spec["dnsNames"] == ["portus.example.com", "registry.example.com"]
    assert spec["secretName"] == "edge-tls"
    assert spec["issuerRef"] == {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert spec["privateKey"]["rotationPolicy"] == "Always"
    assert (spec["duration"], spec["renewBefore"]) == ("2160h", "720h")
    assert _ingress_secrets(from_cert_manager) == {"edge-tls"}
    # A public issuer (ACME): nothing for clients to install.
    assert "caCertificate" not in from_cert_manager.outputs


def test_cert_manager_certificate_is_valid_against_cert_managers_crd(from_cert_manager: Rendered) -> None:
    assert validate_objects(from_cert_manager.objects) == []
    certificate = get(from_cert_manager, "Certificate", "edge")
    for path, wrong in ((("spec", "issuerRef", "nmae"), "x"), (("spec", "privateKey", "rotationPolicy"), "Sometimes"),
                        (("spec", "renewBeforePercent"), 30)):
        broken: Obj = copy.deepcopy(certificate)
        target = broken
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = wrong
        assert validate_objects([broken]), f"{'.'.join(path)} = {wrong!r} passed the CRD schema"


def test_an_address_among_the_hosts_is_an_ip_san_of_the_certificate() -> None:
    source = CertManagerCertificate(IssuerRef("corporate-ca"))
    spec = source.spec(["portus.example.com", "192.0.2.10"])
    assert (spec["dnsNames"], spec["ipAddresses"]) == (["portus.example.com"], ["192.0.2.10"])
    certificate = {"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                   "metadata": {"name": "edge", "namespace": "portus"}, "spec": spec}
    assert validate_objects([certificate]) == []


@pytest.mark.parametrize(("source", "edge_type", "edges"), [
    ("from_cert_manager", "kubernetes:networking.k8s.io/v1:Ingress", 3),
    ("from_cert_manager_behind_proxy", "kubernetes:apps/v1:Deployment", 1),
])
def test_pulumi_waits_for_the_certificate_before_the_edge_uses_its_secret(
    source: str, edge_type: str, edges: int, request: pytest.FixtureRequest
) -> None:
    """pulumi-kubernetes awaits a custom resource only with `pulumi.com/waitFor` (since 4.18): Ready, and the
    Ingresses or the proxy depend on the Certificate, so nginx never serves without its certificate."""
    rendered: Rendered = request.getfixturevalue(source)
    certificate = get(rendered, "Certificate", "edge")
    assert certificate["metadata"]["annotations"]["pulumi.com/waitFor"] == "condition=Ready"
    record = _record(rendered, "kubernetes:cert-manager.io/v1:Certificate")
    urn = record.options["urn"]
    users = [r for r in rendered.resources if r.type == edge_type and urn in r.options["dependencies"]]
    assert len(users) == edges, f"{len(users)} of the {edge_type} wait for the Certificate"
    assert record.options["customTimeouts"] == {"create": "15m", "update": "15m"}


def test_acme_solvers_may_be_reached_on_their_port_only(from_cert_manager: Rendered, dev: Rendered) -> None:
    policy = get(from_cert_manager, "NetworkPolicy", "allow-acme-solver")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"acme.cert-manager.io/http01-solver": "true"}}
    assert policy["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}],
        "ports": [{"protocol": "TCP", "port": 8089}],
    }]
    assert policy["egress"] == []
    assert not [p for p in dev.objects_of("NetworkPolicy") if p["metadata"]["name"] == "allow-acme-solver"]


@pytest.mark.parametrize("stack", ["prod", "node_port"])
def test_the_platform_secret_keeps_its_resource_through_the_move(stack: str, request: pytest.FixtureRequest) -> None:
    """Earlier versions declared `proxy-tls` in the proxy's component, with every exposure: an alias to that
    parent keeps the same Secret instead of creating one (which would fail: it exists) and deleting the old,
    also with exposure ingress, where the proxy is gone."""
    rendered: Rendered = request.getfixturevalue(stack)
    secret = next(r for r in rendered.resources
                  if r.type == "kubernetes:core/v1:Secret" and r.outputs["metadata"]["name"] == "proxy-tls")
    platform, _, _ = _record(rendered, "portus:platform:PortusPlatform").options["urn"].rpartition("::")
    proxy_urn = f"{platform}$portus:proxy:Proxy::proxy"
    assert secret.options["aliases"] == [{"spec": {"parentUrn": proxy_urn}}]
    assert secret.name == "proxy-tls"
    if stack == "node_port":
        assert _record(rendered, "portus:proxy:Proxy").options["urn"] == proxy_urn


def test_portus_serves_an_rsa_key(prod: Rendered) -> None:
    """Puma 3.x pins secp521r1, with which an ECDSA P-256 key has no usable curve (OpenSSL 1.1.0)."""
    key = load_pem_private_key(secret_data(get(prod, "Secret", "portus-tls"))["tls.key"].encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048


def test_self_signed_edge_is_the_platform_certificate_as_before(prod: Rendered, node_port: Rendered) -> None:
    assert _ingress_secrets(prod) == {"proxy-tls"}
    assert _proxy_secrets(node_port) == {"tls": "proxy-tls", "platform-tls": "proxy-tls"}
    assert _sans(secret_data(get(prod, "Secret", "proxy-tls"))["tls.crt"]) == SERVICE_NAMES | set(PUBLIC.values())
    assert prod.outputs["caCertificate"] == get(prod, "ConfigMap", "portus-trust-bundle")["data"]["ca.crt"]


@pytest.mark.parametrize("source", ["node_port", "from_public_ca", "from_cert_manager_behind_proxy"])
def test_the_reloader_watches_every_certificate_nginx_serves(source: str, request: pytest.FixtureRequest) -> None:
    """A renewal reaches nginx by a reload, never by a roll: the sidecar watches exactly the files nginx.conf
    serves, sees them through the same mounts, and can signal nginx's master (one process namespace)."""
    rendered: Rendered = request.getfixturevalue(source)
    proxy = get(rendered, "Deployment", "proxy")
    nginx_conf = get(rendered, "ConfigMap", "proxy-config")["data"]["nginx.conf"]
    served = set(re.findall(r"ssl_certificate(?:_key)? (\S+);", nginx_conf))
    assert len(served) == 4
    reloader = container(proxy, "reloader")
    script = reloader["command"][-1]
    assert set(re.search(r"fingerprint\(\) \{ cat (.+) \| cksum; \}", script)[1].split()) == served  # type: ignore[index]
    assert "nginx -s reload -c /etc/nginx/conf/nginx.conf" in script
    nginx_mounts = {(m["name"], m["mountPath"]) for m in container(proxy, "nginx")["volumeMounts"]}
    assert nginx_mounts <= {(m["name"], m["mountPath"]) for m in reloader["volumeMounts"]}
    assert reloader["image"] == container(proxy, "nginx")["image"]
    assert pod_spec(proxy)["shareProcessNamespace"] is True
    assert set(proxy["spec"]["template"]["metadata"]["annotations"]) == {"checksum/config"}


def test_a_preview_shows_which_secret_the_edge_will_serve() -> None:
    """`pulumi preview --diff` (CI's pull-request comment) names the Secret before the Certificate exists."""
    preview = render_stack({**MINIMAL_CONFIG, "tls": {
        "source": "certManager", "issuer": {"name": "letsencrypt", "kind": "ClusterIssuer"},
    }}, preview=True)
    assert _ingress_secrets(preview) == {"edge-tls"}
