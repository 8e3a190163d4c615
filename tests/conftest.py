"""Rendered stacks shared by the tests: each is one run of the real program under the doubles."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.render import Rendered, load_stack_file, render_stack

REPO_ROOT = Path(__file__).resolve().parent.parent

# The smallest valid stack: only the required keys.
MINIMAL_CONFIG: dict[str, object] = {"host": "portus.example.com", "adminEmail": "admin@example.com"}
# Credentials a user keeps in stack config (`pulumi config set --secret --path ...`).
CONFIG_SECRETS = {
    "s3AccessKey": "AKIACONFIGSECRET0001",
    "s3SecretKey": "config/secret+key/for-the-bucket-0123456789",
    "redisPassword": "redis-config-secret-9876",
    "databasePassword": "database-config-secret-5432",
}

# Credentials given in the integrations stack's config: they must reach Portus only through Secrets.
SETTINGS_SECRETS = {
    "ldap": "ldap-Bind-s3cret",
    "gitlab": "gitlab-Client-s3cret",
    "google": "google-Client-s3cret",
    "smtp": "smtp-Relay-s3cret",
}


def _test_ca(name: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


DIRECTORY_CA = _test_ca("Corp Directory CA")
MAIL_CA = _test_ca("Corp Mail CA")

# Every setting on, each credential from secret config except the relay's (an existing Secret).
INTEGRATIONS_CONFIG: dict[str, object] = {
    **MINIMAL_CONFIG,
    "ldap": {
        "hostname": "ldap.corp.example",
        "encryption": {"method": "simple_tls", "ca": DIRECTORY_CA},
        "base": "ou=people,dc=corp,dc=example",
        "filter": "(memberOf=cn=registry,ou=groups,dc=corp,dc=example)",
        "authentication": {"bindDn": "cn=portus,ou=services,dc=corp,dc=example", "password": SETTINGS_SECRETS["ldap"]},
        "guessEmail": {"enabled": True, "attr": "mail"},
        "cidrs": ["10.20.0.0/16"],
    },
    "oidc": {
        "localLogin": False,
        "gitlab": {"applicationId": "portus-app", "secret": SETTINGS_SECRETS["gitlab"],
                   "server": "https://gitlab.corp.example:8443", "group": "registry-users"},
        "googleOauth2": {"id": "portus.apps.googleusercontent.com", "secret": SETTINGS_SECRETS["google"],
                         "options": {"hd": "corp.example"}},
    },
    "email": {
        "from": "registry@corp.example",
        "name": "Corp Registry",
        "smtp": {"address": "smtp.corp.example", "ca": MAIL_CA, "userName": "portus",
                 "password": {"existingSecret": "corp-smtp", "key": "relay-password"}, "cidrs": ["192.0.2.25/32"]},
    },
    "tagRetention": {"olderThan": 90, "tag": "^build-\\d+$"},
    "permissions": {"createTeam": False, "manageNamespace": {"enabled": False}, "pushImages": "allow-personal"},
}


def stack_config(name: str) -> dict[str, object]:
    config, _project, _stack = load_stack_file(REPO_ROOT / f"Pulumi.{name}.yaml")
    return config


@pytest.fixture(scope="session")
def render() -> Callable[[Mapping[str, object]], Rendered]:
    """Renders a config, once per distinct config in the whole test session."""
    cache: dict[str, Rendered] = {}

    def render_once(config: Mapping[str, object]) -> Rendered:
        key = repr(sorted(config.items()))
        if key not in cache:
            cache[key] = render_stack(config)
        return cache[key]

    return render_once


@pytest.fixture(scope="session")
def dev(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render(stack_config("dev"))


@pytest.fixture(scope="session")
def prod(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render(stack_config("prod"))


@pytest.fixture(scope="session")
def node_port(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**MINIMAL_CONFIG, "exposure": "nodePort", "publicPort": 31443})


@pytest.fixture(scope="session")
def load_balancer(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**MINIMAL_CONFIG, "exposure": "loadBalancer", "registryHost": "registry.example.com"})


@pytest.fixture(scope="session")
def ip_host(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    """A cluster without DNS: clients reach the registry by a node's IP address."""
    return render({**MINIMAL_CONFIG, "host": "192.168.1.10", "exposure": "nodePort"})


@pytest.fixture(scope="session")
def integrations(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render(INTEGRATIONS_CONFIG)


@pytest.fixture(scope="session")
def scale(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render(stack_config("scale"))


@pytest.fixture(scope="session")
def config_secrets(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    """Object storage, Redis and an external database, every credential from stack config."""
    return render({
        **MINIMAL_CONFIG,
        "registryStorage": {"type": "s3", "bucket": "portus-images", "region": "eu-west-1",
                            "accessKey": CONFIG_SECRETS["s3AccessKey"], "secretKey": CONFIG_SECRETS["s3SecretKey"]},
        "registryReplicas": 2,
        "registryCache": {"type": "redis", "address": "10.0.0.7:6379", "password": CONFIG_SECRETS["redisPassword"]},
        "database": {"type": "external", "adapter": "postgresql", "host": "db.example.com", "name": "portus",
                     "username": "portus", "password": CONFIG_SECRETS["databasePassword"]},
    })
