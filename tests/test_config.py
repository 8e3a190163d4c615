"""Bad stack config stops the program before any resource, with one line that names the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import KEYS, PROJECT, parse_backup, parse_config
from components.database.backup import BackupConfig
from components.edge.certificate import CertManagerCertificate, ExistingSecret, GeneratedCertificate, IssuerRef
from components.monitoring import MetricsConfig
from components.node_trust import NodeTrustConfig
from components.registry.storage import FilesystemStorage
from components.validation import ConfigError
from tests.conftest import MINIMAL_CONFIG, REPO_ROOT
from tests.rehearsal.corporate import issue

_REMOVE = object()

# (what is wrong, overrides of the minimal valid config, the key the message must name)
BAD_CONFIGS: list[tuple[str, dict[str, object], str]] = [
    ("missing host", {"host": _REMOVE}, "host"),
    ("host with scheme", {"host": "https://portus.example.com"}, "host"),
    ("host with port", {"host": "portus.example.com:443"}, "host"),
    ("host with underscore and capitals", {"host": "Portus_Example.com"}, "host"),
    ("host is an IP address", {"host": "10.0.0.1"}, "host"),
    ("registry host with an empty label", {"registryHost": "registry..example.com"}, "registryHost"),
    ("missing admin e-mail", {"adminEmail": _REMOVE}, "adminEmail"),
    ("malformed admin e-mail", {"adminEmail": "not-an-email"}, "adminEmail"),
    ("admin user name too short", {"adminUsername": "ad"}, "adminUsername"),
    ("admin user name reserved by Portus", {"adminUsername": "portus"}, "adminUsername"),
    ("namespace with capitals", {"namespace": "Portus"}, "namespace"),
    ("namespace longer than a DNS label", {"namespace": "a" * 64}, "namespace"),
    ("unknown exposure mode", {"exposure": "clusterIP"}, "exposure"),
    ("port zero", {"publicPort": 0}, "publicPort"),
    ("port out of range", {"publicPort": 70000}, "publicPort"),
    ("port of the wrong type", {"publicPort": "https"}, "publicPort"),
    ("node port outside the node port range", {"exposure": "nodePort", "publicPort": 443}, "publicPort"),
    ("nodePort mode with an ingress class", {"exposure": "nodePort", "ingressClassName": "nginx"},
     "ingressClassName"),
    ("loadBalancer mode with an ingress controller namespace",
     {"exposure": "loadBalancer", "ingressControllerNamespace": "ingress-nginx"}, "ingressControllerNamespace"),
    ("negative registry size", {"registryStorageSize": "-5Gi"}, "registryStorageSize"),
    ("zero database size", {"databaseStorageSize": "0"}, "databaseStorageSize"),
    ("size that is no quantity", {"registryStorageSize": "lots"}, "registryStorageSize"),
    ("existing claim together with a size",
     {"registryExistingClaim": "old-registry-data", "registryStorageSize": "50Gi"}, "registryStorageSize"),
    ("storage class with an underscore", {"storageClass": "fast_ssd"}, "storageClass"),
    ("unpinned image", {"portusImage": "opensuse/portus"}, "portusImage"),
    ("image pinned to latest", {"registryImage": "registry:latest"}, "registryImage"),
    ("boolean that is not one", {"keepDataOnDestroy": "maybe"}, "keepDataOnDestroy"),
    ("signup flag that is not a boolean", {"signupEnabled": "yes"}, "signupEnabled"),
    ("zero replicas", {"portusReplicas": 0}, "portusReplicas"),
    ("too many proxy replicas", {"proxyReplicas": 11}, "proxyReplicas"),
    ("unknown log level", {"logLevel": "verbose"}, "logLevel"),
    ("resources for an unknown workload", {"resources": {"web": {"limits": {"cpu": "1"}}}}, "resources.web"),
    ("negative CPU request", {"resources": {"portus": {"requests": {"cpu": "-1"}}}},
     "resources.portus.requests.cpu"),
    ("request above its limit", {"resources": {"registry": {"requests": {"memory": "4Gi"}}}},
     "resources.registry.requests.memory"),
    ("unknown resource field", {"resources": {"proxy": {"requests": {"gpu": "1"}}}}, "resources.proxy.requests"),
    ("resources that are not an object", {"resources": "big"}, "resources"),
    ("cluster domain with an underscore", {"clusterDomain": "cluster_local"}, "clusterDomain"),
    ("misspelled key", {"hostname": "portus.example.com"}, "hostname"),
    ("adoption flag that is not a boolean", {"adoptExisting": "yes"}, "adoptExisting"),
    ("render folder under a home shortcut", {"renderYamlTo": "~/manifests"}, "renderYamlTo"),
    ("adoption while only rendering YAML", {"renderYamlTo": "manifests", "adoptExisting": True}, "adoptExisting"),
    ("unpinned exporter image", {"proxyExporterImage": "nginx/nginx-prometheus-exporter"}, "proxyExporterImage"),
    ("unknown catalog sync strategy", {"catalogSync": "always"}, "catalogSync"),
    ("backup settings that are not an object", {"backup": "nightly"}, "backup"),
    ("unknown backup field", {"backup": {"keep": 3}}, "backup.keep"),
    ("backup schedule that is no cron schedule", {"backup": {"schedule": "every night"}}, "backup.schedule"),
    ("backup schedule with seconds", {"backup": {"schedule": "0 15 3 * * *"}}, "backup.schedule"),
    ("no backups to retain", {"backup": {"retain": 0}}, "backup.retain"),
    ("backup size that is no quantity", {"backup": {"storageSize": "big"}}, "backup.storageSize"),
    ("backup flag that is not a boolean", {"backup": {"enabled": "yes"}}, "backup.enabled"),
    ("service monitor flag that is not a boolean", {"metrics": {"serviceMonitor": "yes"}}, "metrics.serviceMonitor"),
    ("monitoring namespace with capitals", {"metrics": {"namespace": "Monitoring"}}, "metrics.namespace"),
    ("metrics label value with a space", {"metrics": {"labels": {"release": "kube prometheus"}}}, "metrics.labels"),
    ("unknown certificate source", {"tls": {"source": "letsEncrypt"}}, "tls.source"),
    ("unknown tls field", {"tls": {"secret": "corporate-tls"}}, "tls.secret"),
    ("secret source without the Secret's name", {"tls": {"source": "secret"}}, "tls.secretName"),
    ("Secret name with capitals", {"tls": {"source": "secret", "secretName": "Corporate_TLS"}}, "tls.secretName"),
    ("Secret name with the selfSigned source", {"tls": {"secretName": "corporate-tls"}}, "tls.secretName"),
    ("Secret name the platform uses", {"tls": {"source": "secret", "secretName": "proxy-tls"}}, "tls.secretName"),
    ("issuer with the secret source", {"tls": {"source": "secret", "secretName": "corporate-tls",
                                               "issuer": {"name": "corporate-ca"}}}, "tls.issuer"),
    ("CA certificate with the selfSigned source", {"tls": {"caCertificate": "x"}}, "tls.caCertificate"),
    ("CA certificate that is no PEM", {"tls": {"source": "secret", "secretName": "corporate-tls",
                                               "caCertificate": "corporate root"}}, "tls.caCertificate"),
    ("CA certificate that is a private key", {"tls": {"source": "secret", "secretName": "corporate-tls",
                                                      "caCertificate": "-----BEGIN PRIVATE KEY-----\nMIIB\n"
                                                                       "-----END PRIVATE KEY-----\n"}},
     "tls.caCertificate"),
    ("cert-manager without an issuer", {"tls": {"source": "certManager"}}, "tls.issuer"),
    ("issuer without a name", {"tls": {"source": "certManager", "issuer": {"kind": "ClusterIssuer"}}},
     "tls.issuer.name"),
    ("cert-manager issuer of another kind", {"tls": {"source": "certManager",
                                                     "issuer": {"name": "ca", "kind": "CertIssuer"}}},
     "tls.issuer.kind"),
    ("external issuer without its kind", {"tls": {"source": "certManager",
                                                  "issuer": {"name": "pca", "group": "awspca.cert-manager.io"}}},
     "tls.issuer.kind"),
    ("certificate duration in days", {"tls": {"source": "certManager", "issuer": {"name": "ca"},
                                              "duration": "90d"}}, "tls.duration"),
    ("certificate duration under cert-manager's minimum", {"tls": {"source": "certManager", "issuer": {"name": "ca"},
                                                                   "duration": "30m"}}, "tls.duration"),
    ("renewal no earlier than expiry", {"tls": {"source": "certManager", "issuer": {"name": "ca"},
                                                "duration": "720h", "renewBefore": "720h"}}, "tls.renewBefore"),
    ("renewal later than cert-manager's default lifetime", {"tls": {"source": "certManager",
                                                                    "issuer": {"name": "ca"},
                                                                    "renewBefore": "2200h"}}, "tls.renewBefore"),
    ("node trust flag that is not a boolean", {"nodeTrust": {"enabled": "yes"}}, "nodeTrust.enabled"),
    ("unknown node trust field", {"nodeTrust": {"containerd": True}}, "nodeTrust.containerd"),
    ("node trust in the platform's namespace", {"nodeTrust": {"enabled": True, "namespace": "portus"}},
     "nodeTrust.namespace"),
    ("node trust with nothing to install", {"tls": {"source": "secret", "secretName": "public-tls"},
                                            "nodeTrust": {"enabled": True}}, "nodeTrust.enabled"),
]


def _config(overrides: dict[str, object]) -> dict[str, object]:
    merged = {**MINIMAL_CONFIG, **overrides}
    return {key: value for key, value in merged.items() if value is not _REMOVE}


def test_table_is_large_enough() -> None:
    assert len(BAD_CONFIGS) >= 25


@pytest.mark.parametrize(("problem", "overrides", "key"), BAD_CONFIGS, ids=[case[0] for case in BAD_CONFIGS])
def test_render_rejects_bad_config(problem: str, overrides: dict[str, object], key: str, tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {f"{PROJECT}:{k}": v for k, v in _config(overrides).items()}}))
    # The renderer reads Pulumi.yaml beside the stack file, as the CLI does.
    (tmp_path / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    out_dir = tmp_path / "out"

    result = subprocess.run(
        [sys.executable, "-m", "tests.render", str(stack_file), str(out_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert key in lines[0], lines[0]
    assert not out_dir.exists() or not any(out_dir.iterdir()), "objects were written for a rejected config"


def test_message_names_key_value_and_what_is_allowed() -> None:
    with pytest.raises(Exception) as error:
        parse_config({**MINIMAL_CONFIG, "exposure": "clusterIP"})
    assert str(error.value) == (
        "config error: portus:exposure = 'clusterIP': one of ingress, nodePort, loadBalancer"
    )


def test_pulumi_yaml_declares_every_key_with_its_type_and_default() -> None:
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == {key.name for key in KEYS}
    for key in KEYS:
        assert declared[key.name]["description"] == key.description
        assert declared[key.name].get("type") == key.yaml_type, key.name
        if "default" in declared[key.name]:
            assert declared[key.name]["default"] == key.default, key.name


def test_defaults_of_a_minimal_config() -> None:
    config = parse_config(MINIMAL_CONFIG)
    assert config.exposure.mode.value == "ingress"
    assert config.exposure.port == 443
    assert config.registry_address == "portus.example.com"
    assert config.storage.keep_on_destroy is True
    assert config.storage.adopt_existing is False
    assert config.storage.registry == FilesystemStorage(size="20Gi")
    node_port = parse_config({**MINIMAL_CONFIG, "exposure": "nodePort"})
    assert node_port.exposure.port == 30443
    assert node_port.registry_address == "portus.example.com:30443"


def test_day_two_defaults() -> None:
    config = parse_config(MINIMAL_CONFIG)
    assert config.catalog_sync == "update"
    assert config.backup == BackupConfig(enabled=True, schedule="15 3 * * *", retain=7, storage_size="10Gi")
    assert config.metrics == MetricsConfig(service_monitor=False, namespace="monitoring")
    # The backup claim follows the platform's storage class unless it names its own.
    assert parse_config({**MINIMAL_CONFIG, "storageClass": "fast-ssd"}).backup.storage_class == "fast-ssd"
    own = parse_config({**MINIMAL_CONFIG, "storageClass": "fast-ssd", "backup": {"storageClass": "cheap"}})
    assert own.backup.storage_class == "cheap"
    assert parse_config({**MINIMAL_CONFIG, "backup": {"schedule": "@daily"}}).backup.schedule == "@daily"


def test_backups_need_the_internal_database() -> None:
    assert parse_backup({}, internal_database=False, default_class=None).enabled is False
    with pytest.raises(ConfigError) as error:
        parse_backup({"enabled": True}, internal_database=False, default_class=None)
    assert str(error.value).startswith("config error: portus:backup.enabled = true: backups dump the internal MariaDB")


def test_certificate_sources_and_node_trust_from_config() -> None:
    config = parse_config(MINIMAL_CONFIG)
    assert config.tls == GeneratedCertificate()
    assert config.node_trust == NodeTrustConfig(enabled=False, namespace="portus-node-trust", docker=False)
    ca = issue(["portus.example.com"]).root_pem
    # Indentation and blank lines from a YAML block do not matter: what clients get is the certificate.
    secret = parse_config({**MINIMAL_CONFIG, "tls": {"source": "secret", "secretName": "corporate-tls",
                                                     "caCertificate": "\n  " + ca.replace("\n", "\n  ")}})
    assert secret.tls == ExistingSecret("corporate-tls", ca)
    external = parse_config({**MINIMAL_CONFIG, "tls": {"source": "certManager", "issuer": {
        "name": "pca", "kind": "AWSPCAClusterIssuer", "group": "awspca.cert-manager.io",
    }}})
    assert external.tls == CertManagerCertificate(IssuerRef("pca", "AWSPCAClusterIssuer", "awspca.cert-manager.io"))
    assert parse_config({**MINIMAL_CONFIG, "tls": {"source": "certManager", "issuer": {"name": "ca"}}}).tls == (
        CertManagerCertificate(IssuerRef("ca", "Issuer", "cert-manager.io"))
    )
    trusted = parse_config({**MINIMAL_CONFIG, "nodeTrust": {"enabled": True, "docker": True}})
    assert trusted.node_trust == NodeTrustConfig(enabled=True, docker=True)


def test_a_private_key_given_as_ca_certificate_is_never_shown() -> None:
    key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ConfigError) as error:
        parse_config({**MINIMAL_CONFIG, "tls": {"source": "secret", "secretName": "x", "caCertificate": key}})
    assert "MIIEvQ" not in str(error.value)
    assert str(error.value).startswith("config error: portus:tls.caCertificate = '[secret]': holds a private key")
