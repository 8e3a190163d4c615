"""The Docker Distribution registry's ``config.yml``, generated from data in this one place.

The file carries no secret: ``http.secret`` (and any object store or Redis credential) reaches the
container as env from a Secret, e.g. ``REGISTRY_HTTP_SECRET`` (Distribution maps ``REGISTRY_<PATH>``
environment variables over the file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

CONFIG_DIR = "/etc/docker/registry"
CONFIG_FILE = "config.yml"
TOKEN_CERT_FILE = "token.crt"
TLS_DIR = "/etc/registry/tls"
LISTEN_PORT = 5000
DEBUG_PORT = 5001
HEALTH_PATH = "/debug/health"


@dataclass(frozen=True)
class RegistrySettings:
    token_realm: str
    """Public URL of Portus's token endpoint (``https://<host>[:port]/v2/token``): Docker clients follow it."""
    token_service: str
    """Public ``host[:port]`` of the registry: the token audience and Portus's ``external_hostname``."""
    token_issuer: str
    """Must equal ``PORTUS_MACHINE_FQDN_VALUE``, the ``iss`` of the tokens Portus signs."""
    notification_url: str
    """Portus's webhook, reached in-cluster over verified TLS."""
    log_level: str
    config_dir: str = CONFIG_DIR
    tls_dir: str = TLS_DIR
    listen_port: int = LISTEN_PORT
    debug_port: int = DEBUG_PORT


def registry_config(settings: RegistrySettings, storage_driver: dict[str, Any],
                    cache_sections: dict[str, Any]) -> dict[str, Any]:
    """``storage_driver`` is the storage backend's entries, e.g. ``{"filesystem": {"rootdirectory": ...}}``;
    ``cache_sections`` the blob-descriptor cache's, e.g. ``{"storage": {"cache": ...}, "redis": ...}``."""
    sections = dict(cache_sections)
    return {
        "version": 0.1,
        "log": {"level": settings.log_level, "formatter": "text", "fields": {"service": "registry"}},
        "storage": {
            **storage_driver,
            **sections.pop("storage", {}),
            # Portus deletes tags and manifests through the registry API.
            "delete": {"enabled": True},
            "maintenance": {
                "uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False},
            },
        },
        "http": {
            "addr": f":{settings.listen_port}",
            "net": "tcp",
            "tls": {
                "certificate": f"{settings.tls_dir}/tls.crt",
                "key": f"{settings.tls_dir}/tls.key",
                "minimumtls": "tls1.2",
            },
            "headers": {"X-Content-Type-Options": ["nosniff"]},
            # Health and metrics on a plain port that only the kubelet's probes use.
            "debug": {"addr": f":{settings.debug_port}", "prometheus": {"enabled": True, "path": "/metrics"}},
        },
        "auth": {
            "token": {
                "realm": settings.token_realm,
                "service": settings.token_service,
                "issuer": settings.token_issuer,
                "rootcertbundle": f"{settings.config_dir}/{TOKEN_CERT_FILE}",
            },
        },
        "notifications": {
            "events": {"includereferences": True},
            "endpoints": [
                {
                    "name": "portus",
                    "url": settings.notification_url,
                    "timeout": "2s",
                    "threshold": 5,
                    "backoff": "1s",
                },
            ],
        },
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
        **sections,
    }


def render_registry_config(settings: RegistrySettings, storage_driver: dict[str, Any],
                           cache_sections: dict[str, Any]) -> str:
    return yaml.safe_dump(registry_config(settings, storage_driver, cache_sections), sort_keys=False)
