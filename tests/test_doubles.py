"""The doubles must behave like the real providers, or the program's tests prove nothing."""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import re
import string
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import pulumi_random as random
import pulumi_tls as tls
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from pulumi.runtime import set_mocks

from tests.doubles import PlatformMocks, PlatformMonitor, ProviderError, ResourceRecord
from tests.render import REPO_ROOT, RenderFailure, StackConfigError, render_stack
from tests.schema import newest_version, validate_objects


@pytest.fixture
def mocks() -> PlatformMocks:
    # A refused registration faults futures nobody awaits; like the language host,
    # keep asyncio from logging each of them.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    doubles = PlatformMocks()
    set_mocks(
        doubles,
        project="portus",
        stack="test",
        preview=False,
        monitor=PlatformMonitor(doubles),
    )
    return doubles


def evaluate(build: Callable[[], pulumi.Output[Any]]) -> Any:
    """Declare resources under the mocks and return the plain value of the output ``build`` returns."""
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> pulumi.Output[Any]:
        return build().apply(lambda value: box.setdefault("value", value))

    program()
    return box["value"]


def only(mocks: PlatformMocks, type_token: str) -> ResourceRecord:
    (record,) = mocks.by_type(type_token)
    return record


# --------------------------------------------------------------------------- private keys


def test_ecdsa_key_defaults_to_p224_like_the_provider(mocks: PlatformMocks) -> None:
    outputs = evaluate(
        lambda: pulumi.Output.all(
            pem=tls.PrivateKey("k", algorithm="ECDSA").private_key_pem,
            openssh=tls.PrivateKey("k2", algorithm="ECDSA").public_key_openssh,
        )
    )
    key = x509_key(outputs["pem"])
    assert outputs["pem"].startswith("-----BEGIN EC PRIVATE KEY-----")
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp224r1"
    assert outputs["openssh"] == ""  # OpenSSH has no P-224


def test_ecdsa_key_uses_requested_curve(mocks: PlatformMocks) -> None:
    key = tls.PrivateKey("k", algorithm="ECDSA", ecdsa_curve="P256")
    outputs = evaluate(
        lambda: pulumi.Output.all(
            pem=key.private_key_pem, openssh=key.public_key_openssh
        )
    )
    parsed = x509_key(outputs["pem"])
    assert (
        isinstance(parsed, ec.EllipticCurvePrivateKey)
        and parsed.curve.name == "secp256r1"
    )
    assert outputs["openssh"].startswith("ecdsa-sha2-nistp256 ") and outputs[
        "openssh"
    ].endswith("\n")


def test_rsa_bits_default_and_override(mocks: PlatformMocks) -> None:
    pems = evaluate(
        lambda: pulumi.Output.all(
            tls.PrivateKey("default", algorithm="RSA").private_key_pem,
            tls.PrivateKey("big", algorithm="RSA", rsa_bits=3072).private_key_pem,
        )
    )
    sizes = []
    for pem in pems:
        key = x509_key(pem)
        assert pem.startswith("-----BEGIN RSA PRIVATE KEY-----")
        assert isinstance(key, rsa.RSAPrivateKey)
        sizes.append(key.key_size)
    assert sizes == [2048, 3072]


def test_ed25519_key_is_pkcs8_with_fingerprints(mocks: PlatformMocks) -> None:
    key = tls.PrivateKey("k", algorithm="ED25519")
    outputs = evaluate(
        lambda: pulumi.Output.all(
            pem=key.private_key_pem,
            md5=key.public_key_fingerprint_md5,
            sha=key.public_key_fingerprint_sha256,
        )
    )
    assert outputs["pem"].startswith("-----BEGIN PRIVATE KEY-----")
    assert isinstance(x509_key(outputs["pem"]), ed25519.Ed25519PrivateKey)
    assert re.fullmatch(r"([0-9a-f]{2}:){15}[0-9a-f]{2}", outputs["md5"])
    assert re.fullmatch(r"SHA256:[A-Za-z0-9+/]{43}", outputs["sha"])


def test_private_key_outputs_are_secret(mocks: PlatformMocks) -> None:
    evaluate(lambda: tls.PrivateKey("k", algorithm="ECDSA").public_key_pem)
    record = only(mocks, "tls:index/privateKey:PrivateKey")
    assert record.secret_outputs == [
        "privateKeyOpenssh",
        "privateKeyPem",
        "privateKeyPemPkcs8",
    ]


def test_unknown_algorithm_is_rejected(mocks: PlatformMocks) -> None:
    with pytest.raises(ProviderError, match="algorithm"):
        evaluate(lambda: tls.PrivateKey("k", algorithm="DSA").private_key_pem)


# --------------------------------------------------------------------------- certificates


def test_unknown_allowed_use_is_rejected(mocks: PlatformMocks) -> None:
    def build() -> pulumi.Output[Any]:
        key = tls.PrivateKey("k", algorithm="ECDSA", ecdsa_curve="P256")
        return tls.SelfSignedCert(
            "c",
            private_key_pem=key.private_key_pem,
            validity_period_hours=1,
            allowed_uses=["server_auth", "web_serving"],
        ).cert_pem

    with pytest.raises(ProviderError, match="web_serving"):
        evaluate(build)


def _ca_and_leaf(
    ca_key_pem: pulumi.Input[str] | None = None, is_ca: bool = True
) -> dict[str, pulumi.Output[Any]]:
    ca_key = tls.PrivateKey("ca", algorithm="ECDSA", ecdsa_curve="P384")
    ca = tls.SelfSignedCert(
        "ca",
        private_key_pem=ca_key.private_key_pem,
        is_ca_certificate=is_ca,
        validity_period_hours=48,
        allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
        subject=tls.SelfSignedCertSubjectArgs(
            common_name="Portus CA", organization="Example"
        ),
    )
    leaf_key = tls.PrivateKey("leaf", algorithm="RSA")
    request = tls.CertRequest(
        "leaf",
        private_key_pem=leaf_key.private_key_pem,
        subject=tls.CertRequestSubjectArgs(common_name="registry.example.com"),
        dns_names=["registry.example.com", "portus.example.com"],
        ip_addresses=["10.0.0.7"],
    )
    leaf = tls.LocallySignedCert(
        "leaf",
        cert_request_pem=request.cert_request_pem,
        ca_private_key_pem=ca_key_pem
        if ca_key_pem is not None
        else ca_key.private_key_pem,
        ca_cert_pem=ca.cert_pem,
        validity_period_hours=24,
        allowed_uses=[
            "server_auth",
            "client_auth",
            "digital_signature",
            "key_encipherment",
        ],
    )
    return {
        "ca": ca.cert_pem,
        "leaf": leaf.cert_pem,
        "start": leaf.validity_start_time,
        "end": leaf.validity_end_time,
        "ca_alg": leaf.ca_key_algorithm,
        "renew": leaf.ready_for_renewal,
    }


def test_locally_signed_cert_chains_to_its_ca(
    mocks: PlatformMocks, tmp_path: Path
) -> None:
    outputs = evaluate(lambda: pulumi.Output.all(**_ca_and_leaf()))
    (tmp_path / "ca.pem").write_text(outputs["ca"])
    (tmp_path / "leaf.pem").write_text(outputs["leaf"])
    verify = subprocess.run(
        [
            "openssl",
            "verify",
            "-purpose",
            "sslserver",
            "-CAfile",
            str(tmp_path / "ca.pem"),
            str(tmp_path / "leaf.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr

    ca = x509.load_pem_x509_certificate(outputs["ca"].encode())
    leaf = x509.load_pem_x509_certificate(outputs["leaf"].encode())
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == [
        "registry.example.com",
        "portus.example.com",
    ]
    assert sans.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.7")
    ]
    assert leaf.issuer == ca.subject
    ca_ski = ca.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier
    ).value.digest
    assert (
        leaf.extensions.get_extension_for_class(
            x509.AuthorityKeyIdentifier
        ).value.key_identifier
        == ca_ski
    )
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert (
        usage.critical
        and usage.value.digital_signature
        and usage.value.key_encipherment
    )
    assert not usage.value.key_cert_sign
    extended = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(extended) == [
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    assert (
        leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    )
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", outputs["start"])
    assert outputs["ca_alg"] == "ECDSA" and outputs["renew"] is False


def test_locally_signed_cert_needs_a_ca_certificate(mocks: PlatformMocks) -> None:
    with pytest.raises(ProviderError, match="not a CA"):
        evaluate(lambda: _ca_and_leaf(is_ca=False)["leaf"])


def test_locally_signed_cert_needs_the_matching_ca_key(mocks: PlatformMocks) -> None:
    other = tls.PrivateKey("other", algorithm="ECDSA", ecdsa_curve="P384")
    with pytest.raises(ProviderError, match="does not match"):
        evaluate(lambda: _ca_and_leaf(ca_key_pem=other.private_key_pem)["leaf"])


# --------------------------------------------------------------------------- random


def test_random_password_without_special_is_alphanumeric(mocks: PlatformMocks) -> None:
    results = evaluate(
        lambda: pulumi.Output.all(
            *[
                random.RandomPassword(
                    f"p{i}",
                    length=20,
                    special=False,
                    min_upper=6,
                    min_numeric=6,
                    min_lower=2,
                ).result
                for i in range(20)
            ]
        )
    )
    for result in results:
        assert len(result) == 20
        assert set(result) <= set(string.ascii_letters + string.digits)
        assert sum(c.isupper() for c in result) >= 6
        assert sum(c.isdigit() for c in result) >= 6
        assert sum(c.islower() for c in result) >= 2
    record = mocks.by_type("random:index/randomPassword:RandomPassword")[0]
    assert "result" in record.secret_outputs


def test_random_password_default_specials_and_limits(mocks: PlatformMocks) -> None:
    result = evaluate(
        lambda: random.RandomPassword("p", length=200, min_special=3).result
    )
    specials = [c for c in result if not c.isalnum()]
    assert len(specials) >= 3 and set(specials) <= set("!@#$%&*()-_=+[]{}<>:?")
    with pytest.raises(ProviderError, match="length"):
        evaluate(
            lambda: (
                random.RandomPassword(
                    "short", length=3, min_upper=2, min_numeric=2
                ).result
            )
        )


def test_random_string_override_special(mocks: PlatformMocks) -> None:
    result = evaluate(
        lambda: (
            random.RandomString(
                "s",
                length=64,
                upper=False,
                lower=False,
                numeric=False,
                override_special="-_",
            ).result
        )
    )
    assert set(result) <= {"-", "_"} and len(result) == 64


def test_random_id_encodings_agree(mocks: PlatformMocks) -> None:
    def build() -> pulumi.Output[Any]:
        rid = random.RandomId("i", byte_length=8)
        return pulumi.Output.all(
            hex=rid.hex, dec=rid.dec, url=rid.b64_url, std=rid.b64_std
        )

    out = evaluate(build)
    raw = bytes.fromhex(out["hex"])
    assert len(raw) == 8 and int.from_bytes(raw, "big") == int(out["dec"])
    assert (
        base64.b64decode(out["std"])
        == raw
        == base64.urlsafe_b64decode(out["url"] + "=")
    )


def test_resource_ids_are_the_real_providers(mocks: PlatformMocks) -> None:
    # terraform-provider-random: RandomId's ID is the base64url of its bytes without the prefix
    # (resource_id.go), sensitive strings' is "none" (resource_password.go), RandomString's its result.
    # pulumi-kubernetes: "namespace/name", or the name of a cluster-scoped object (fqObjName).
    def build() -> pulumi.Output[Any]:
        rid = random.RandomId("i", byte_length=8, prefix="p-")
        password = random.RandomPassword("p", length=12)
        text = random.RandomString("s", length=12)
        namespace = k8s.core.v1.Namespace("ns", metadata={"name": "portus"})
        config = k8s.core.v1.ConfigMap("cm", metadata={"name": "c", "namespace": "portus"})
        provider = k8s.Provider("explicit")
        return pulumi.Output.all(
            rid.id, rid.hex, password.id, text.id, text.result, namespace.id, config.id, provider.id
        )

    rid, rid_hex, password, text, text_result, namespace, config, provider = evaluate(build)
    assert base64.urlsafe_b64decode(rid + "=" * (-len(rid) % 4)).hex() == rid_hex.removeprefix("p-")
    assert (password, text, namespace, config) == ("none", text_result, "portus", "portus/c")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", provider)


# --------------------------------------------------------------------------- kubernetes


def test_service_gets_stable_cluster_ip_and_auto_name(mocks: PlatformMocks) -> None:
    def build() -> pulumi.Output[Any]:
        named = k8s.core.v1.Service(
            "web",
            metadata=k8s.meta.v1.ObjectMetaArgs(name="web", namespace="portus"),
            spec=k8s.core.v1.ServiceSpecArgs(ports=[k8s.core.v1.ServicePortArgs(port=80)], selector={"app": "web"}),
        )
        headless = k8s.core.v1.Service(
            "db",
            spec=k8s.core.v1.ServiceSpecArgs(cluster_ip="None", ports=[k8s.core.v1.ServicePortArgs(port=5432)]),
        )
        return pulumi.Output.all(
            named.spec.cluster_ip,
            headless.spec.cluster_ip,
            headless.metadata.name,
            headless.metadata.namespace,
            named.id,
        )

    ip, headless_ip, auto_name, namespace, resource_id = evaluate(build)
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.96.0.0/12")
    assert headless_ip == "None"
    assert re.fullmatch(r"db-[0-9a-f]{8}", auto_name) and namespace == "default"
    assert resource_id == "portus/web"
    # Registrations run on executor threads: the order they are recorded in is not the program's.
    record = next(r for r in mocks.by_type("kubernetes:core/v1:Service") if r.name == "web")
    assert record.inputs["spec"]["ports"] == [
        {"port": 80}
    ]  # ints, not protobuf doubles


def test_secret_string_data_stays_secret(mocks: PlatformMocks) -> None:
    evaluate(
        lambda: (
            k8s.core.v1.Secret("s", string_data={"password": "hunter2"}).metadata.name
        )
    )
    record = only(mocks, "kubernetes:core/v1:Secret")
    assert "stringData" in record.secret_outputs and record.inputs["stringData"] == {
        "password": "hunter2"
    }


def test_unexpected_resource_types_are_refused(mocks: PlatformMocks) -> None:
    with pytest.raises(ProviderError, match="unexpected resource type"):
        evaluate(
            lambda: pulumi.CustomResource("aws:s3/bucket:Bucket", "b", {"x": None}).urn
        )


# --------------------------------------------------------------------------- render + schema

PROGRAM = textwrap.dedent(
    """
    import pulumi
    import pulumi_kubernetes as k8s
    import pulumi_random as random
    from components.config import ConfigError

    cfg = pulumi.Config("portus")
    host = cfg.require("hostname")
    if "." not in host:
        raise ConfigError(f"portus:hostname must be a fully qualified name, got {host!r}")
    ports = cfg.require_object("ports")
    password = random.RandomPassword("admin", length=16, special=False)
    k8s.core.v1.Namespace("ns", metadata={"name": "portus"})
    for namespace in ("portus", "other"):
        k8s.core.v1.Service(f"web-{namespace}", metadata={"name": "web", "namespace": namespace},
                            spec={"selector": {"app": "web"}, "ports": [{"port": p} for p in ports]})
    k8s.core.v1.Secret("admin", metadata={"namespace": "portus"}, string_data={"password": password.result})
    pulumi.export("adminPassword", password.result)
    pulumi.export("url", f"https://{host}")
    pulumi.export("replicas", cfg.get_int("replicas"))
    if cfg.get_bool("explode"):
        pulumi.export("broken", password.result.apply(lambda _: {}["missing"]))
    """
)


@pytest.fixture(scope="module")
def program_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("program")
    (root / "components").mkdir()
    (root / "components" / "__init__.py").write_text("")
    (root / "components" / "config.py").write_text(
        "import pulumi\n\n\nclass ConfigError(pulumi.RunError):\n    pass\n"
    )
    (root / "__main__.py").write_text(PROGRAM)
    (root / "Pulumi.yaml").write_text(
        "name: portus\nruntime: python\n"
        "config:\n  replicas:\n    type: integer\n    default: 1\n"
    )
    yield root


def test_render_stack_objects_outputs_and_secrets(program_dir: Path) -> None:
    rendered = render_stack(
        {"hostname": "registry.example.com", "ports": [80, 443], "replicas": 3},
        program_dir=program_dir,
    )
    # Registrations run concurrently, so their order is not the program's.
    assert sorted(o["kind"] for o in rendered.objects) == ["Namespace", "Secret", "Service", "Service"]
    service = rendered.objects_of("Service")[0]
    assert service["apiVersion"] == "v1" and service["spec"]["ports"] == [
        {"port": 80},
        {"port": 443},
    ]
    assert (
        "clusterIP" not in service["spec"]
    )  # rendered as declared, not as the server fills it
    secret = rendered.objects_of("Secret")[0]
    assert (
        secret["metadata"]["name"].startswith("admin-")
        and secret["metadata"]["namespace"] == "portus"
    )
    assert secret["stringData"]["password"] == rendered.outputs["adminPassword"]
    assert (
        rendered.outputs["url"] == "https://registry.example.com"
        and rendered.outputs["replicas"] == 3
    )
    assert rendered.secret_outputs == ["adminPassword"]
    assert len(rendered.resources_of("random:index/randomPassword:RandomPassword")) == 1
    assert validate_objects(rendered.objects) == []


def test_render_stack_reports_config_errors(program_dir: Path) -> None:
    with pytest.raises(StackConfigError, match="fully qualified"):
        render_stack({"hostname": "registry", "ports": []}, program_dir=program_dir)


def test_render_stack_surfaces_errors_inside_apply(program_dir: Path) -> None:
    with pytest.raises(RenderFailure, match="KeyError"):
        render_stack(
            {"hostname": "a.example.com", "ports": [80], "explode": True},
            program_dir=program_dir,
        )


def _module(module: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``python -m module args...`` from the repository root, output captured."""
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_render_cli_writes_files_and_exits_2_on_bad_config(
    program_dir: Path, tmp_path: Path
) -> None:
    good = program_dir / "Pulumi.dev.yaml"
    good.write_text(
        "config:\n  portus:hostname: r.example.com\n  portus:ports:\n    - 5000\n"
    )
    run = _module("tests.render", good, tmp_path / "out", "--program-dir", program_dir)
    assert run.returncode == 0, run.stderr
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "service-portus-web.yaml" in files and "service-other-web.yaml" in files
    assert "namespace-portus.yaml" in files
    assert json.loads((tmp_path / "out" / "outputs.secrets.json").read_text()) == [
        "adminPassword"
    ]
    schema = _module("tests.schema", tmp_path / "out")
    assert schema.returncode == 0, schema.stderr

    bad = program_dir / "Pulumi.bad.yaml"
    bad.write_text("config:\n  portus:hostname: nodots\n  portus:ports: []\n")
    run = _module("tests.render", bad, tmp_path / "bad", "--program-dir", program_dir)
    assert run.returncode == 2
    assert (
        run.stderr.strip()
        == "portus:hostname must be a fully qualified name, got 'nodots'"
    )
    assert not (tmp_path / "bad").exists()


def test_schema_rejects_unknown_fields_and_kinds() -> None:
    objects = [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "d"},
            "spec": {"replicas": "two", "selector": {}, "template": {}, "bogus": 1},
        },
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}},
    ]
    problems = validate_objects(objects)
    assert any("$.spec.replicas" in p and "1.30.0" in p for p in problems)
    assert any(
        "'bogus' was unexpected" in p and newest_version() in p for p in problems
    )
    assert any(p.startswith("Widget/w") and "no schema" in p for p in problems)


def x509_key(pem: str) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(pem.encode(), password=None)


def test_render_stack_applies_project_defaults_and_types(program_dir: Path) -> None:
    rendered = render_stack(
        {"hostname": "a.example.com", "ports": [80]}, program_dir=program_dir
    )
    assert rendered.outputs["replicas"] == 1
    with pytest.raises(StackConfigError, match="'replicas' must be of type 'integer'"):
        render_stack(
            {"hostname": "a.example.com", "ports": [80], "replicas": "many"},
            program_dir=program_dir,
        )
