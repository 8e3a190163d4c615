"""The wiring that makes `docker login/push/pull` work from outside the cluster, checked on the
objects the program declares for each kind of stack."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.validation import ip_address
from tests.conftest import MINIMAL_CONFIG
from tests.objects import (
    all_containers,
    container,
    env,
    get,
    mount_of,
    named_prefix,
    pod_spec,
    registry_config,
    secret_data,
    secret_files,
)
from tests.render import Rendered
from tests.schema import validate_objects

STACKS = ("dev", "prod", "node_port", "load_balancer", "ip_host", "integrations")


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest) -> Rendered:
    rendered: Rendered = request.getfixturevalue(request.param)
    return rendered


def service_names(service: str, namespace: str) -> set[str]:
    return {service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"}


def sans(pem: str) -> set[str]:
    """DNS names and IP addresses (as text) a certificate is valid for."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)) | {
        str(address) for address in names.get_values_for_type(x509.IPAddress)
    }


def namespace_of(rendered: Rendered) -> str:
    return str(rendered.objects_of("Namespace")[0]["metadata"]["name"])


def test_every_object_is_schema_valid(stack: Rendered) -> None:
    assert validate_objects(stack.objects) == []


def test_token_realm_service_and_issuer_agree_with_portus(stack: Rendered) -> None:
    token = registry_config(stack)["auth"]["token"]
    portus_env = env(container(get(stack, "Deployment", "portus")))

    assert token["realm"] == f"{stack.outputs['portalUrl']}/v2/token"
    assert token["service"] == stack.outputs["registryHost"]
    assert token["issuer"] == portus_env["PORTUS_MACHINE_FQDN_VALUE"]
    assert urlsplit(token["realm"]).hostname == portus_env["PORTUS_MACHINE_FQDN_VALUE"]


def test_registry_trusts_exactly_the_key_portus_signs_with(stack: Rendered) -> None:
    registry = get(stack, "Deployment", "registry")
    portus = get(stack, "Deployment", "portus")
    bundle_path = registry_config(stack)["auth"]["token"]["rootcertbundle"]
    config_dir = mount_of(registry, container(registry), "ConfigMap", "registry-config")
    assert Path(bundle_path).parent == Path(config_dir)
    bundle = get(stack, "ConfigMap", "registry-config")["data"][Path(bundle_path).name]

    key_path = env(container(portus))["PORTUS_KEY_PATH"]
    assert mount_of(portus, container(portus), "Secret", "portus-secrets") == key_path
    key = serialization.load_pem_private_key(
        secret_data(get(stack, "Secret", "portus-secrets"))["token.key"].encode(), password=None
    )

    # RS256 tokens: an EC key makes the registry reject every token.
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size >= 2048
    cert = x509.load_pem_x509_certificate(bundle.encode())
    assert cert.public_key() == key.public_key()


def _chain_verifies(ca_pem: str, cert_pem: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    ca_file, cert_file = tmp_path / "ca.crt", tmp_path / "server.crt"
    ca_file.write_text(ca_pem)
    cert_file.write_text(cert_pem)
    return subprocess.run(
        ["openssl", "verify", "-purpose", "sslserver", "-CAfile", str(ca_file), str(cert_file)],
        capture_output=True, text=True, check=False,
    )


def test_every_certificate_chains_to_the_ca_and_names_every_host_its_clients_use(
    stack: Rendered, tmp_path: Path
) -> None:
    ns = namespace_of(stack)
    ca = stack.outputs["caCertificate"]
    nginx_conf = get(stack, "ConfigMap", "proxy-config")["data"]["nginx.conf"]
    upstream_hosts = dict(re.findall(r"upstream (\w+) \{\s+server ([^:;\s]+):\d+;", nginx_conf))
    notification_host = urlsplit(registry_config(stack)["notifications"]["endpoints"][0]["url"]).hostname
    bootstrap_env = env(container(named_prefix(stack, "Job", "portus-bootstrap-")))
    ingress_names = {
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-ssl-name"]
        for ingress in stack.objects_of("Ingress")
    }
    public_hosts = {urlsplit(stack.outputs["portalUrl"]).hostname,
                    urlsplit(f"https://{stack.outputs['registryHost']}").hostname}

    expected = {
        "proxy-tls": service_names("proxy", ns) | public_hosts | ingress_names,
        "portus-tls": service_names("portus", ns) | {upstream_hosts["portus"], notification_host},
        "registry-tls": service_names("registry", ns)
        | {upstream_hosts["registry"], bootstrap_env["BOOTSTRAP_REGISTRY_HOSTNAME"].rsplit(":", 1)[0]},
    }
    for secret_name, names in expected.items():
        data = secret_data(get(stack, "Secret", secret_name))
        verified = _chain_verifies(ca, data["tls.crt"], tmp_path)
        assert verified.returncode == 0, f"{secret_name}: {verified.stdout}{verified.stderr}"
        assert names <= sans(data["tls.crt"]), f"{secret_name} misses {names - sans(data['tls.crt'])}"
        key = serialization.load_pem_private_key(data["tls.key"].encode(), password=None)
        cert = x509.load_pem_x509_certificate(data["tls.crt"].encode())
        assert key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ), f"{secret_name}: key and certificate do not match"


def test_a_certificate_from_another_ca_does_not_verify(dev: Rendered, prod: Rendered, tmp_path: Path) -> None:
    other_ca = prod.outputs["caCertificate"]
    cert = secret_data(get(dev, "Secret", "proxy-tls"))["tls.crt"]
    assert _chain_verifies(other_ca, cert, tmp_path).returncode != 0


def test_trust_bundle_is_mounted_where_each_tls_client_reads_it(stack: Rendered) -> None:
    bundle = get(stack, "ConfigMap", "portus-trust-bundle")
    assert bundle["data"]["ca.crt"] == stack.outputs["caCertificate"]

    proxy = get(stack, "Deployment", "proxy")
    nginx_conf = get(stack, "ConfigMap", "proxy-config")["data"]["nginx.conf"]
    trusted = re.search(r"proxy_ssl_trusted_certificate (\S+);", nginx_conf)
    assert trusted and "proxy_ssl_verify on;" in nginx_conf and "proxy_ssl_verify off" not in nginx_conf
    nginx = container(proxy, "nginx")
    assert trusted.group(1) == f"{mount_of(proxy, nginx, 'ConfigMap', 'portus-trust-bundle')}/ca.crt"

    registry = get(stack, "Deployment", "registry")
    trust_dir = mount_of(registry, container(registry), "ConfigMap", "portus-trust-bundle")
    assert trust_dir in env(container(registry))["SSL_CERT_DIR"].split(":")

    for workload in [get(stack, "Deployment", "portus"), get(stack, "Deployment", "portus-background"),
                     *stack.objects_of("Job")]:
        init = next(c for c in pod_spec(workload)["initContainers"] if c["name"] == "ca-bundle")
        bundle_file = env(pod_spec(workload)["containers"][0])["SSL_CERT_FILE"]
        trust_mount = mount_of(workload, init, "ConfigMap", "portus-trust-bundle")
        script = init["command"][-1]
        assert f"{trust_mount}/ca.crt" in script and f"> {bundle_file}" in script
        shared = {m["name"] for m in init["volumeMounts"]} & {
            m["name"] for m in pod_spec(workload)["containers"][0]["volumeMounts"]
            if bundle_file.startswith(m["mountPath"] + "/")
        }
        assert shared, f"{workload['metadata']['name']} does not see the bundle its init container writes"


def test_registry_record_matches_the_registry_service(stack: Rendered) -> None:
    ns = namespace_of(stack)
    config = registry_config(stack)
    bootstrap_env = env(container(named_prefix(stack, "Job", "portus-bootstrap-")))
    registry_service = get(stack, "Service", "registry")
    port = registry_service["spec"]["ports"][0]["port"]

    assert bootstrap_env["BOOTSTRAP_REGISTRY_EXTERNAL_HOSTNAME"] == config["auth"]["token"]["service"]
    assert bootstrap_env["BOOTSTRAP_REGISTRY_HOSTNAME"] == f"registry.{ns}.svc.cluster.local:{port}"
    assert config["http"]["addr"] == f":{port}"


def test_notifications_reach_portus_over_tls(stack: Rendered) -> None:
    ns = namespace_of(stack)
    url = urlsplit(registry_config(stack)["notifications"]["endpoints"][0]["url"])
    portus_port = get(stack, "Service", "portus")["spec"]["ports"][0]["port"]
    assert (url.scheme, url.hostname, url.port, url.path) == (
        "https", f"portus.{ns}.svc.cluster.local", portus_port, "/v2/webhooks/events"
    )
    assert env(container(get(stack, "Deployment", "portus")))["PORTUS_PUMA_TLS_CERT"]


def test_public_names_resolve_to_the_proxy_inside_portus_pods(stack: Rendered) -> None:
    services = [r for r in stack.resources if r.type == "kubernetes:core/v1:Service"]
    public = urlsplit(f"https://{stack.outputs['registryHost']}")
    portal = urlsplit(stack.outputs["portalUrl"])
    names = [h for h in dict.fromkeys([portal.hostname, public.hostname]) if h and not ip_address(h)]
    for workload in [get(stack, "Deployment", "portus"), get(stack, "Deployment", "portus-background"),
                     *stack.objects_of("Job")]:
        aliases = pod_spec(workload).get("hostAliases", [])
        if not names:
            # An IP address needs no alias: it is reached as clients reach it.
            assert aliases == []
            continue
        (alias,) = aliases
        assert alias["hostnames"] == names
        (service,) = [r.outputs for r in services if r.outputs["spec"].get("clusterIP") == alias["ip"]]
        # An address the cluster gives at once: the provider waits for a LoadBalancer's external one.
        assert service["spec"].get("type", "ClusterIP") in ("ClusterIP", "NodePort")
        assert service["spec"]["selector"] == get(stack, "Deployment", "proxy")["spec"]["selector"]["matchLabels"]
        # The Service answers on the public port, so host:port means the same inside and outside.
        assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(public.port or 443, "https")]


def test_node_port_exposure_uses_the_same_port_inside_and_outside(node_port: Rendered) -> None:
    service = get(node_port, "Service", "proxy")["spec"]
    assert service["type"] == "NodePort"
    assert service["ports"][0]["port"] == service["ports"][0]["nodePort"] == 31443
    assert node_port.outputs["registryHost"] == "portus.example.com:31443"
    assert registry_config(node_port)["auth"]["token"]["realm"] == "https://portus.example.com:31443/v2/token"
    assert node_port.objects_of("Ingress") == []


def test_an_ip_address_is_the_public_host_of_a_cluster_without_dns(ip_host: Rendered) -> None:
    assert ip_host.outputs["registryHost"] == "192.168.1.10:30443"
    assert ip_host.outputs["portalUrl"] == "https://192.168.1.10:30443"
    token = registry_config(ip_host)["auth"]["token"]
    assert (token["realm"], token["service"], token["issuer"]) == (
        "https://192.168.1.10:30443/v2/token", "192.168.1.10:30443", "192.168.1.10",
    )
    edge = x509.load_pem_x509_certificate(secret_data(get(ip_host, "Secret", "proxy-tls"))["tls.crt"].encode())
    alt_names = edge.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # Clients check an address against IP SANs only: as a DNS name it would not count.
    assert [str(a) for a in alt_names.get_values_for_type(x509.IPAddress)] == ["192.168.1.10"]
    assert "192.168.1.10" not in alt_names.get_values_for_type(x509.DNSName)
    assert "hostAliases" not in pod_spec(get(ip_host, "Deployment", "portus"))
    # Portus follows the realm to the node address: its egress allows exactly that address and port.
    realm = {"to": [{"ipBlock": {"cidr": "192.168.1.10/32"}}], "ports": [{"protocol": "TCP", "port": 30443}]}
    for workload in ("portus", "background"):
        assert realm in get(ip_host, "NetworkPolicy", f"allow-{workload}")["spec"]["egress"], workload
    assert ip_host.outputs["caInstallPaths"]["docker"] == "/etc/docker/certs.d/192.168.1.10:30443/ca.crt"


def test_load_balancer_exposure(load_balancer: Rendered) -> None:
    assert get(load_balancer, "Service", "proxy")["spec"]["type"] == "LoadBalancer"
    assert load_balancer.objects_of("Ingress") == []
    assert load_balancer.outputs["registryHost"] == "registry.example.com"
    assert load_balancer.outputs["portalUrl"] == "https://portus.example.com"


def test_ingress_lets_multi_gigabyte_layers_through_to_a_verified_backend(dev: Rendered) -> None:
    ingress = get(dev, "Ingress", "portus")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-body-size"] == "0"
    assert annotations[prefix + "proxy-request-buffering"] == "off"
    assert annotations[prefix + "backend-protocol"] == "HTTPS"
    assert annotations[prefix + "proxy-ssl-verify"] == "on"
    assert int(annotations[prefix + "proxy-read-timeout"]) >= 600
    ca_secret = annotations[prefix + "proxy-ssl-secret"].split("/")
    assert secret_data(get(dev, "Secret", ca_secret[1]))["ca.crt"] == dev.outputs["caCertificate"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"][0]["secretName"] == "proxy-tls"
    assert ingress["spec"]["tls"][0]["hosts"] == ["portus.127.0.0.1.nip.io"]


def _options(rendered: Rendered, type_suffix: str, name: str) -> Mapping[str, object]:
    return next(r.options for r in rendered.resources if r.type.endswith(type_suffix) and r.name == name)


def test_volumes_carry_the_configured_class_and_size_and_survive_destroy(prod: Rendered) -> None:
    claim = get(prod, "PersistentVolumeClaim", "registry-data")["spec"]
    assert claim["storageClassName"] == "fast-ssd"
    assert claim["resources"]["requests"]["storage"] == "500Gi"
    assert _options(prod, ":PersistentVolumeClaim", "registry-data")["retainOnDelete"] is True

    database = get(prod, "StatefulSet", "mariadb")["spec"]
    template = database["volumeClaimTemplates"][0]["spec"]
    assert template["storageClassName"] == "fast-ssd"
    assert template["resources"]["requests"]["storage"] == "20Gi"
    assert database["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    statefulset = _options(prod, ":StatefulSet", "database")
    # The claim outlives the StatefulSet, which destroy deletes: no database keeps running.
    assert statefulset["retainOnDelete"] is False
    assert statefulset["ignoreChanges"] == ["spec.volumeClaimTemplates"]
    # Deleting the namespace would delete the claims in it.
    assert _options(prod, ":Namespace", "namespace")["retainOnDelete"] is True


def test_throwaway_stack_lets_destroy_remove_its_volumes(dev: Rendered) -> None:
    assert _options(dev, ":PersistentVolumeClaim", "registry-data")["retainOnDelete"] is False
    assert _options(dev, ":StatefulSet", "database")["retainOnDelete"] is False
    assert get(dev, "StatefulSet", "mariadb")["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


def test_existing_registry_claim_is_used_instead_of_a_new_one(
    render: Callable[[Mapping[str, object]], Rendered],
) -> None:
    rendered = render({**MINIMAL_CONFIG, "registryExistingClaim": "old-registry-data"})
    assert [c["metadata"]["name"] for c in rendered.objects_of("PersistentVolumeClaim")] == ["mariadb-backup"]
    volumes = pod_spec(get(rendered, "Deployment", "registry"))["volumes"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "old-registry-data"}} in volumes


def test_database_uses_utf8_and_a_dedicated_user(stack: Rendered) -> None:
    mariadb = container(get(stack, "StatefulSet", "mariadb"))
    assert {"--character-set-server=utf8", "--collation-server=utf8_unicode_ci"} <= set(mariadb["args"])
    portus = get(stack, "Deployment", "portus")
    database_env, portus_env = env(mariadb), env(container(portus))
    assert portus_env["PORTUS_DB_USERNAME"] == database_env["MARIADB_USER"] != "root"
    assert portus_env["PORTUS_DB_DATABASE"] == database_env["MARIADB_DATABASE"]
    statefulset = get(stack, "StatefulSet", "mariadb")
    portus_password = secret_files(portus, container(portus))["PORTUS_DB_PASSWORD"]
    assert secret_files(statefulset, mariadb)["MARIADB_PASSWORD"] == portus_password
    assert portus_env["PORTUS_DB_HOST"] == f"mariadb.{namespace_of(stack)}.svc.cluster.local"


def test_outputs_tell_a_user_how_to_log_in(stack: Rendered) -> None:
    outputs = stack.outputs
    assert "adminPassword" in stack.secret_outputs
    assert outputs["dockerLogin"] == (
        f"docker login {outputs['registryHost']} --username {outputs['adminUsername']} --password-stdin"
    )
    assert outputs["caInstallPaths"]["docker"] == f"/etc/docker/certs.d/{outputs['registryHost']}/ca.crt"
    assert outputs["caInstallPaths"]["containerd"] == f"/etc/containerd/certs.d/{outputs['registryHost']}/ca.crt"
    bootstrap = named_prefix(stack, "Job", "portus-bootstrap-")
    assert env(container(bootstrap))["BOOTSTRAP_ADMIN_USERNAME"] == outputs["adminUsername"]
    _, name, key = secret_files(bootstrap, container(bootstrap))["BOOTSTRAP_ADMIN_PASSWORD"]
    assert secret_data(get(stack, "Secret", name))[key] == outputs["adminPassword"]


def test_every_workload_runs_a_pinned_image(stack: Rendered) -> None:
    for kind in ("Deployment", "StatefulSet", "Job"):
        for workload in stack.objects_of(kind):
            for spec in all_containers(workload):
                assert re.search(r":[\w][\w.-]*$", spec["image"]) and not spec["image"].endswith(":latest")



def test_only_what_destroy_keeps_goes_through_the_kept_data_provider(prod: Rendered) -> None:
    provider = next(r for r in prod.resources if r.type == "pulumi:providers:kubernetes" and r.name == "kept-data")
    kept = {
        "kubernetes:core/v1:Namespace", "kubernetes:core/v1:PersistentVolumeClaim", "kubernetes:apps/v1:StatefulSet",
    }
    for record in prod.resources:
        if record.type in kept:
            assert record.options["provider"].startswith(provider.options["urn"]), record.name
        elif record.type.startswith("kubernetes:"):
            # The default provider, as before: moving a resource to another provider is a change.
            assert record.options["provider"] == "", record.name


def test_database_reapplies_the_generated_password_to_a_kept_volume(stack: Rendered) -> None:
    statefulset = get(stack, "StatefulSet", "mariadb")
    init = next(c for c in pod_spec(statefulset)["initContainers"] if c["name"] == "credentials")
    mariadb = container(statefulset)
    init_file = next(a.split("=", 1)[1] for a in mariadb["args"] if a.startswith("--init-file="))
    script = init["command"][-1]
    assert f"password=$(cat {env(mariadb)['MARIADB_PASSWORD_FILE']});" in script
    assert f"ALTER USER IF EXISTS '{env(mariadb)['MARIADB_USER']}'@'%' IDENTIFIED BY '$password'" in script
    assert script.startswith("set -e;") and script.endswith(f"> {init_file}")
    credentials = next(m for m in mariadb["volumeMounts"] if m["name"] == "credentials")
    assert credentials in init["volumeMounts"]
    volume = next(v for v in pod_spec(statefulset)["volumes"] if v["name"] == "init")
    assert volume["emptyDir"]["medium"] == "Memory"
