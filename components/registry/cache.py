"""The registry's blob-descriptor cache (what it knows about each blob: digest, size, media type).

Each kind is one small class that contributes its entry of ``storage.cache`` in ``config.yml``, any other
section it needs there, the env and Secret its credentials take, and the services outside the namespace
the registry connects to for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.validation import SecretText

COMPONENT = "registry"
# Key of the Secret holding the Redis password, whether the user's own or the one made from config.
PASSWORD_KEY = "password"


@dataclass
class CacheAttachment:
    env: list[k8s.core.v1.EnvVarArgs]
    secrets: list[pulumi.Input[str]]
    """Credential values the program holds: a change rolls the registry pods."""


class BlobDescriptorCache(Protocol):
    def config_sections(self) -> dict[str, Any]:
        """What the cache adds to config.yml: ``{"storage": {"cache": ...}}`` and any top-level section;
        never a credential."""

    def attach(self, name: str, namespace: pulumi.Input[str], parent: pulumi.Resource) -> CacheAttachment:
        """Declares what the cache owns, as children of ``parent``, and the env the registry needs."""

    def remotes(self) -> list[kube.Remote]:
        """Services outside the namespace the registry connects to for the cache."""


@dataclass(frozen=True)
class InMemoryCache:
    """Each registry pod caches descriptors in its own memory (the registry image's own default)."""

    def config_sections(self) -> dict[str, Any]:
        return {"storage": {"cache": {"blobdescriptor": "inmemory"}}}

    def attach(self, name: str, namespace: pulumi.Input[str], parent: pulumi.Resource) -> CacheAttachment:
        return CacheAttachment([], [])

    def remotes(self) -> list[kube.Remote]:
        return []


@dataclass(frozen=True)
class RedisCache:
    """A Redis server every registry pod shares: a blob one pod has seen is known to all of them.

    Distribution 2.8 speaks plain TCP to Redis (no TLS): keep the server inside the cluster or on a
    network you trust. The password reaches the registry as ``REGISTRY_REDIS_PASSWORD`` from a Secret.
    """

    host: str
    port: int
    db: int = 0
    password_secret: str | None = None
    """An existing Secret whose ``password`` key is the Redis password."""
    password: SecretText | None = None
    cidrs: tuple[str, ...] = ()
    """Address ranges of the Redis server, to narrow the NetworkPolicy; empty: any address."""

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def config_sections(self) -> dict[str, Any]:
        # configuration.Redis of Distribution 2.8: timeouts bound a slow Redis, the pool bounds connections.
        return {
            "storage": {"cache": {"blobdescriptor": "redis"}},
            "redis": {
                "addr": self.address,
                "db": self.db,
                "dialtimeout": "5s",
                "readtimeout": "2s",
                "writetimeout": "2s",
                "pool": {"maxidle": 16, "maxactive": 64, "idletimeout": "300s"},
            },
        }

    def attach(self, name: str, namespace: pulumi.Input[str], parent: pulumi.Resource) -> CacheAttachment:
        secret: pulumi.Input[str] | None = self.password_secret
        held: list[pulumi.Input[str]] = []
        if self.password:
            held = [self.password.output()]
            secret = kube.opaque_secret(
                f"{name}-cache", f"{name}-cache", namespace, COMPONENT, {PASSWORD_KEY: self.password.output()},
                pulumi.ResourceOptions(parent=parent),
            ).metadata.name
        env = [kube.secret_env("REGISTRY_REDIS_PASSWORD", secret, PASSWORD_KEY)] if secret else []
        return CacheAttachment(env, held)

    def remotes(self) -> list[kube.Remote]:
        return [kube.Remote(self.port, self.cidrs)]
