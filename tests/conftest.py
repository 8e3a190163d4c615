"""Rendered stacks shared by the tests: each is one run of the real program under the doubles."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

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
