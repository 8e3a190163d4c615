"""Bad stack config stops the program before any resource, with one line that names the key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import KEYS, PROJECT, parse_backup, parse_config
from components.database.backup import BackupConfig
from components.database.endpoint import ExternalDatabase, InternalDatabase
from components.edge.certificate import CertManagerCertificate, ExistingSecret, GeneratedCertificate, IssuerRef
from components.monitoring import MetricsConfig
from components.node_trust import NodeTrustConfig
from components.registry.cache import InMemoryCache, RedisCache
from components.registry.storage import FilesystemStorage, S3Storage
from components.validation import ConfigError
from tests.conftest import MINIMAL_CONFIG, REPO_ROOT
from tests.rehearsal.corporate import issue

_REMOVE = object()
S3 = {"type": "s3", "bucket": "portus-images", "region": "eu-west-1"}
REDIS = {"type": "redis", "address": "redis.cache.svc.cluster.local:6379"}
EXTERNAL_DB = {"type": "external", "adapter": "postgresql", "host": "db.example.com", "name": "portus",
               "username": "portus", "passwordSecret": "portus-db"}
_LDAP = {"hostname": "ldap.corp.example", "base": "ou=people,dc=corp,dc=example"}
_MAIL = {"from": "registry@corp.example"}
_PEM = (
    "-----BEGIN CERTIFICATE-----\nMIIBJDCBzKADAgECAgEBMAoGCCqGSM49BAMCMBIxEDAOBgNVBAMMB0NvcnAgQ0Ew\n"
    "-----END CERTIFICATE-----\n"
)
_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n"

# (what is wrong, overrides of the minimal valid config, the key the message must name)
BAD_CONFIGS: list[tuple[str, dict[str, object], str]] = [
    ("missing host", {"host": _REMOVE}, "host"),
    ("host with scheme", {"host": "https://portus.example.com"}, "host"),
    ("host with port", {"host": "portus.example.com:443"}, "host"),
    ("host with underscore and capitals", {"host": "Portus_Example.com"}, "host"),
    ("host with an underscore", {"host": "portus_example.com"}, "host"),
    ("host is an IP address behind an Ingress", {"host": "10.0.0.1"}, "host"),
    ("registry host is an IP address behind an Ingress", {"registryHost": "10.0.0.2"}, "registryHost"),
    ("host is an IPv6 address", {"exposure": "nodePort", "host": "fd00::10"}, "host"),
    ("host is no valid IPv4 address", {"exposure": "nodePort", "host": "10.0.0.256"}, "host"),
    ("cluster domain is an IP address", {"clusterDomain": "10.96.0.10"}, "clusterDomain"),
    ("registry host with an empty label", {"registryHost": "registry..example.com"}, "registryHost"),
    ("missing admin e-mail", {"adminEmail": _REMOVE}, "adminEmail"),
    ("malformed admin e-mail", {"adminEmail": "not-an-email"}, "adminEmail"),
    ("admin user name too short", {"adminUsername": "ad"}, "adminUsername"),
    ("admin user name reserved by Portus", {"adminUsername": "portus"}, "adminUsername"),
    ("namespace with capitals", {"namespace": "Portus"}, "namespace"),
    ("namespace longer than a DNS label", {"namespace": "a" * 64}, "namespace"),
    # A YAML block scalar (`|`) ends in a newline, which no Kubernetes name or quantity may carry.
    ("namespace with a trailing newline", {"namespace": "portus\n"}, "namespace"),
    ("size with a trailing newline", {"registryStorageSize": "20Gi\n"}, "registryStorageSize"),
    ("unknown exposure mode", {"exposure": "clusterIP"}, "exposure"),
    ("port zero", {"publicPort": 0}, "publicPort"),
    ("port out of range", {"publicPort": 70000}, "publicPort"),
    ("port of the wrong type", {"publicPort": "https"}, "publicPort"),
    ("port that is no whole number", {"publicPort": 8443.5}, "publicPort"),
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
    ("unknown registry storage type", {"registryStorage": {"type": "gcs"}}, "registryStorage.type"),
    ("registry storage that is not an object", {"registryStorage": "s3"}, "registryStorage"),
    ("s3 without a bucket", {"registryStorage": {**S3, "bucket": _REMOVE}}, "registryStorage.bucket"),
    ("s3 bucket name with capitals", {"registryStorage": {**S3, "bucket": "Images"}}, "registryStorage.bucket"),
    ("s3 without a region", {"registryStorage": {**S3, "region": _REMOVE}}, "registryStorage.region"),
    ("s3 option the driver does not have", {"registryStorage": {**S3, "forcepathstyle": True}},
     "registryStorage.forcepathstyle"),
    ("s3 chunk size below 5 MiB (the registry panics)", {"registryStorage": {**S3, "chunkSize": "4Mi"}},
     "registryStorage.chunkSize"),
    ("s3 endpoint with a path", {"registryStorage": {**S3, "regionEndpoint": "https://minio.example.com/s3"}},
     "registryStorage.regionEndpoint"),
    ("s3 endpoint without scheme", {"registryStorage": {**S3, "regionEndpoint": "minio.example.com:9000"}},
     "registryStorage.regionEndpoint"),
    ("s3 credentials Secret and keys together",
     {"registryStorage": {**S3, "credentialsSecret": "s3", "accessKey": "AKIA", "secretKey": "x"}},
     "registryStorage.credentialsSecret"),
    ("s3 access key without secret key", {"registryStorage": {**S3, "accessKey": "AKIA"}}, "registryStorage.secretKey"),
    ("s3 redirect that is not a boolean", {"registryStorage": {**S3, "redirect": "sometimes"}},
     "registryStorage.redirect"),
    ("s3 address range that is not one", {"registryStorage": {**S3, "cidrs": ["10.0.0.0/33"]}},
     "registryStorage.cidrs"),
    ("s3 with a claim size", {"registryStorage": S3, "registryStorageSize": "50Gi"}, "registryStorageSize"),
    ("s3 with an access mode", {"registryStorage": {**S3, "accessMode": "ReadWriteMany"}},
     "registryStorage.accessMode"),
    ("filesystem with a bucket", {"registryStorage": {"type": "filesystem", "bucket": "images"}},
     "registryStorage.bucket"),
    ("unknown access mode", {"registryStorage": {"type": "filesystem", "accessMode": "ReadOnlyMany"}},
     "registryStorage.accessMode"),
    ("registry replicas on a ReadWriteOnce claim", {"registryReplicas": 3}, "registryReplicas"),
    ("zero registry replicas", {"registryStorage": S3, "registryReplicas": 0}, "registryReplicas"),
    ("unknown cache type", {"registryCache": {"type": "memcached"}}, "registryCache.type"),
    ("redis address without port", {"registryCache": {"type": "redis", "address": "redis.cache.svc"}},
     "registryCache.address"),
    ("redis without address", {"registryCache": {"type": "redis"}}, "registryCache.address"),
    ("redis database number out of range", {"registryCache": {**REDIS, "db": -1}}, "registryCache.db"),
    ("redis password Secret and password together",
     {"registryCache": {**REDIS, "passwordSecret": "redis", "password": "x"}}, "registryCache.passwordSecret"),
    ("in-memory cache with an address", {"registryCache": {"type": "inmemory", "address": "redis:6379"}},
     "registryCache.address"),
    ("unknown database type", {"database": {"type": "sqlite"}}, "database.type"),
    ("external database without host", {"database": {**EXTERNAL_DB, "host": _REMOVE}}, "database.host"),
    ("external database host with scheme", {"database": {**EXTERNAL_DB, "host": "mysql://db.example.com"}},
     "database.host"),
    ("external database with an unknown adapter", {"database": {**EXTERNAL_DB, "adapter": "sqlite3"}},
     "database.adapter"),
    ("external database without password", {"database": {**EXTERNAL_DB, "passwordSecret": _REMOVE}},
     "database.passwordSecret"),
    ("external database port zero", {"database": {**EXTERNAL_DB, "port": 0}}, "database.port"),
    ("external database without a name", {"database": {**EXTERNAL_DB, "name": _REMOVE}}, "database.name"),
    ("internal database with a host", {"database": {"type": "internal", "host": "db.example.com"}},
     "database.host"),
    ("backups with an external database", {"database": EXTERNAL_DB, "backup": {"enabled": True}}, "backup.enabled"),
    # portus:ldap
    ("LDAP settings that are not an object", {"ldap": "ldap.corp.example"}, "ldap"),
    ("LDAP without a host", {"ldap": {"base": "dc=corp,dc=example"}}, "ldap.hostname"),
    ("LDAP enabled without base", {"ldap": {"enabled": True, "hostname": "ldap.corp.example"}}, "ldap.base"),
    ("LDAP port out of range", {"ldap": {**_LDAP, "port": 70000}}, "ldap.port"),
    ("unknown LDAP encryption", {"ldap": {**_LDAP, "encryption": {"method": "ldaps"}}}, "ldap.encryption.method"),
    ("LDAP CA with plain LDAP", {"ldap": {**_LDAP, "encryption": {"method": "none", "ca": _PEM}}},
     "ldap.encryption.ca"),
    ("LDAP CA that is a private key", {"ldap": {**_LDAP, "encryption": {"ca": _KEY}}}, "ldap.encryption.ca"),
    ("LDAP timeout, which Portus 2.4.3 ignores", {"ldap": {**_LDAP, "timeout": 10}}, "ldap.timeout"),
    ("LDAP filter with unbalanced parentheses", {"ldap": {**_LDAP, "filter": "(&(uid=*)"}}, "ldap.filter"),
    ("LDAP bind DN without its password",
     {"ldap": {**_LDAP, "authentication": {"bindDn": "cn=portus,dc=corp,dc=example"}}},
     "ldap.authentication.password"),
    ("LDAP bind password Portus would read as a number",
     {"ldap": {**_LDAP, "authentication": {"bindDn": "cn=portus,dc=corp,dc=example", "password": "0123"}}},
     "ldap.authentication.password"),
    ("LDAP address range with host bits set", {"ldap": {**_LDAP, "cidrs": ["10.20.0.1/16"]}}, "ldap.cidrs"),
    ("sign-up switched on with LDAP", {"ldap": _LDAP, "signupEnabled": True}, "signupEnabled"),
    # portus:oidc
    ("OpenID Connect issuer, which Portus 2.4.3 lacks", {"oidc": {"issuer": "https://sso.corp.example"}},
     "oidc.issuer"),
    ("OpenID without the provider's identifier", {"oidc": {"openId": {"domain": "corp.example"}}},
     "oidc.openId.identifier"),
    ("OpenID identifier over plain HTTP", {"oidc": {"openId": {"identifier": "http://openid.corp.example"}}},
     "oidc.openId.identifier"),
    ("GitLab sign-in without its secret",
     {"oidc": {"gitlab": {"applicationId": "app", "server": "https://gitlab.corp.example"}}}, "oidc.gitlab.secret"),
    ("GitHub sign-in open to every GitHub account",
     {"oidc": {"github": {"clientId": "app", "clientSecret": "s3cret-value"}}}, "oidc.github.organization"),
    ("GitHub team without its organization",
     {"oidc": {"github": {"clientId": "app", "clientSecret": "s3cret-value", "team": "registry"}}},
     "oidc.github.organization"),
    ("an OAuth provider Portus 2.4.3 does not have", {"oidc": {"keycloak": {"clientId": "app"}}}, "oidc.keycloak"),
    ("local login off with nothing to sign in with", {"oidc": {"localLogin": False}}, "oidc.localLogin"),
    # portus:email
    ("malformed sender address", {"email": {"from": "registry"}}, "email.from"),
    ("SMTP without a sender address", {"email": {"smtp": {"address": "smtp.corp.example"}}}, "email.from"),
    ("SMTP without a relay", {"email": {**_MAIL, "smtp": {"port": 587}}}, "email.smtp.address"),
    ("SMTP port zero", {"email": {**_MAIL, "smtp": {"address": "smtp.corp.example", "port": 0}}},
     "email.smtp.port"),
    ("unknown SMTP TLS mode", {"email": {**_MAIL, "smtp": {"address": "smtp.corp.example", "sslTls": "starttls"}}},
     "email.smtp.sslTls"),
    ("unknown SMTP verify mode",
     {"email": {**_MAIL, "smtp": {"address": "smtp.corp.example", "opensslVerifyMode": "fail"}}},
     "email.smtp.opensslVerifyMode"),
    ("SMTP user without a password",
     {"email": {**_MAIL, "smtp": {"address": "smtp.corp.example", "userName": "portus"}}}, "email.smtp.password"),
    ("SMTP password from a Secret with an invalid name",
     {"email": {**_MAIL, "smtp": {"address": "smtp.corp.example", "userName": "portus",
                                  "password": {"existingSecret": "Corp_SMTP"}}}},
     "email.smtp.password.existingSecret"),
    # portus:tagRetention
    ("retention with a negative age", {"tagRetention": {"olderThan": -1}}, "tagRetention.olderThan"),
    ("retention without an age", {"tagRetention": {"tag": "^build-"}}, "tagRetention.olderThan"),
    ("retention keeping the latest tags, which Portus 2.4.3 lacks",
     {"tagRetention": {"olderThan": 30, "keepLatest": 5}}, "tagRetention.keepLatest"),
    ("retention tag pattern that is no regular expression", {"tagRetention": {"olderThan": 30, "tag": "build-("}},
     "tagRetention.tag"),
    ("retention tag pattern Portus would read as a number", {"tagRetention": {"olderThan": 30, "tag": "2024"}},
     "tagRetention.tag"),
    # portus:permissions
    ("unknown push policy", {"permissions": {"pushImages": "everyone"}}, "permissions.pushImages.policy"),
    ("permission switch that is not a boolean", {"permissions": {"createTeam": "no"}},
     "permissions.createTeam.enabled"),
    ("permission Portus 2.4.3 does not have", {"permissions": {"deleteImages": False}}, "permissions.deleteImages"),
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


def _without_removed(value: object) -> object:
    if isinstance(value, dict):
        return {key: _without_removed(item) for key, item in value.items() if item is not _REMOVE}
    return value


def _config(overrides: dict[str, object]) -> dict[str, object]:
    merged = _without_removed({**MINIMAL_CONFIG, **overrides})
    assert isinstance(merged, dict)
    return merged


def test_table_is_large_enough() -> None:
    assert len(BAD_CONFIGS) >= 25


def _render(config: dict[str, object], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``python -m tests.render`` of a stack file with ``config``, beside a copy of Pulumi.yaml (the CLI
    reads the project's declarations there, and the renderer does as the CLI does)."""
    stack_file = tmp_path / "Pulumi.bad.yaml"
    stack_file.write_text(yaml.safe_dump({"config": {f"{PROJECT}:{k}": v for k, v in config.items()}}))
    (tmp_path / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    return subprocess.run(
        [sys.executable, "-m", "tests.render", str(stack_file), str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.parametrize(("problem", "overrides", "key"), BAD_CONFIGS, ids=[case[0] for case in BAD_CONFIGS])
def test_render_rejects_bad_config(problem: str, overrides: dict[str, object], key: str, tmp_path: Path) -> None:
    out_dir = tmp_path / "out"
    result = _render(_config(overrides), tmp_path)

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


def test_pulumi_yaml_declares_every_key_with_its_default_and_no_type() -> None:
    declared = yaml.safe_load((REPO_ROOT / "Pulumi.yaml").read_text())["config"]
    assert set(declared) == {key.name for key in KEYS}
    for key in KEYS:
        assert declared[key.name]["description"] == key.description
        # A declared type makes the CLI reject a mistyped value with its own sentence before the program
        # runs; without one, the program's check names the key, the value and what is allowed.
        assert "type" not in declared[key.name], f"{key.name}: remove `type:` from Pulumi.yaml"
        if "default" in declared[key.name]:
            assert declared[key.name]["default"] == key.default, key.name


# (key, value as written in a stack file, the whole line the program prints)
TYPE_ERRORS = [
    ("publicPort", "abc", "config error: portus:publicPort = 'abc': an integer from 1 to 65535"),
    ("publicPort", 8443.5, "config error: portus:publicPort = '8443.5': an integer from 1 to 65535"),
    ("keepDataOnDestroy", "maybe", "config error: portus:keepDataOnDestroy = 'maybe': true or false"),
]


@pytest.mark.parametrize(("key", "value", "line"), TYPE_ERRORS, ids=[f"{k}={v}" for k, v, _ in TYPE_ERRORS])
def test_type_errors_print_the_config_error_line(key: str, value: object, line: str, tmp_path: Path) -> None:
    result = _render({**MINIMAL_CONFIG, key: value}, tmp_path)
    assert (result.returncode, result.stderr) == (2, line + "\n")


# (host as written, what the message must say)
HOST_RULES = [
    ("Portus.Example.COM", "in lower case: portus.example.com"),
    ("https://portus.example.com", "without a scheme: portus.example.com"),
    ("portus.example.com:8443", "without a port: portus.example.com (the port is publicPort)"),
    ("portus.example.com/v2", "without a path: portus.example.com"),
    ("portus_example.com", "'_' is not allowed"),
    ("portus-.example.com", "labels start and end with a letter or digit: 'portus-'"),
    ("192.168.1.10", "an IP address needs exposure nodePort or loadBalancer"),
    ("fd00::10", "IPv6 addresses are not supported"),
]


@pytest.mark.parametrize(("host", "rule"), HOST_RULES, ids=[h for h, _ in HOST_RULES])
def test_host_errors_say_which_rule_failed(host: str, rule: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({**MINIMAL_CONFIG, "host": host})
    assert str(error.value).startswith(f"config error: portus:host = {host!r}: ")
    assert rule in str(error.value)


@pytest.mark.parametrize("exposure", ["nodePort", "loadBalancer"])
def test_ip_addresses_are_hosts_with_node_port_or_load_balancer(exposure: str) -> None:
    config = parse_config({**MINIMAL_CONFIG, "exposure": exposure, "host": "192.168.1.10",
                           "registryHost": "192.168.1.11"})
    assert (config.host, config.registry_host) == ("192.168.1.10", "192.168.1.11")
    assert config.registry_address == ("192.168.1.11:30443" if exposure == "nodePort" else "192.168.1.11")


def test_defaults_of_a_minimal_config() -> None:
    config = parse_config(MINIMAL_CONFIG)
    assert config.exposure.mode.value == "ingress"
    assert config.exposure.port == 443
    assert config.registry_address == "portus.example.com"
    assert config.storage.keep_on_destroy is True
    assert config.storage.adopt_existing is False
    assert config.storage.registry == FilesystemStorage(size="20Gi")
    assert config.registry_replicas == 1
    assert config.registry_cache == InMemoryCache()
    assert isinstance(config.database, InternalDatabase) and config.database.in_cluster
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


def test_credentials_in_config_are_never_shown() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    cases: list[dict[str, object]] = [
        {"registryStorage": {**S3, "accessKey": "AKIAEXAMPLE", "secretkey": secret}},  # misspelled field
        {"registryStorage": {**S3, "accessKey": secret}},  # secretKey missing
        {"registryCache": {**REDIS, "password": [secret]}},
        {"database": {**EXTERNAL_DB, "passwordSecret": _REMOVE, "password": {"value": secret}}},
        {"database": {**EXTERNAL_DB, "password": secret}},  # both password sources
    ]
    for overrides in cases:
        with pytest.raises(ConfigError) as error:
            parse_config(_config(overrides))
        assert secret not in str(error.value), str(error.value)


def test_object_keys_arrive_as_json_from_the_cli() -> None:
    # `pulumi config set --path` stores objects; the engine hands them to the program as JSON text.
    config = parse_config({
        **MINIMAL_CONFIG,
        "registryStorage": json.dumps({**S3, "chunkSize": "16Mi", "accessKey": "AKIA", "secretKey": "s3cr3t"}),
        "registryReplicas": "3",
        "registryCache": json.dumps({**REDIS, "db": "2"}),
        "database": json.dumps({**EXTERNAL_DB, "port": "6432"}),
    })
    storage = config.storage.registry
    assert isinstance(storage, S3Storage) and storage.shared
    assert storage.chunk_size == 16 << 20
    assert storage.secret_key is not None and storage.secret_key.value == "s3cr3t"
    assert "s3cr3t" not in repr(config)
    assert config.registry_replicas == 3
    assert config.registry_cache == RedisCache(host="redis.cache.svc.cluster.local", port=6379, db=2)
    assert isinstance(config.database, ExternalDatabase)
    assert (config.database.adapter, config.database.port) == ("postgresql", 6432)
    assert not config.database.in_cluster


def test_external_database_port_defaults_to_the_adapters() -> None:
    for adapter, expected in (("mysql2", 3306), ("postgresql", 5432)):
        database = parse_config({**MINIMAL_CONFIG, "database": {**EXTERNAL_DB, "adapter": adapter}}).database
        assert isinstance(database, ExternalDatabase) and database.port == expected


def test_replicas_on_a_shared_claim() -> None:
    config = parse_config({**MINIMAL_CONFIG, "registryReplicas": 2,
                           "registryStorage": {"type": "filesystem", "accessMode": "ReadWriteMany"}})
    assert config.storage.registry == FilesystemStorage(size="20Gi", access_mode="ReadWriteMany")


def test_an_external_database_turns_backups_off() -> None:
    config = parse_config({**MINIMAL_CONFIG, "database": EXTERNAL_DB})
    assert config.backup.enabled is False


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
    assert str(error.value).startswith("config error: portus:tls.caCertificate = '[secret]': this is a private key")
