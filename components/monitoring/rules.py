"""The platform's Prometheus alerts, generated from data in this one place.

Metric names are the ones the programs export: Distribution 2.8's ``registry_http_*`` (its only
Prometheus counters; it counts no storage-driver errors, so those are read off the handlers that touch
storage), the nginx exporter's ``nginx_*`` (stub_status), and kube-state-metrics' Job and CronJob
series (part of kube-prometheus-stack) for the backup.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Registry handlers that read or write the storage driver (registry/handlers/app.go names them).
STORAGE_HANDLERS = "blob|blob_upload|blob_upload_chunk|manifest|tags|catalog"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    duration: str
    severity: str
    summary: str
    description: str

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.duration,
            "labels": {"severity": self.severity},
            "annotations": {"summary": self.summary, "description": self.description},
        }


@dataclass(frozen=True)
class AlertTargets:
    namespace: str
    registry_job: str
    """The ``job`` label Prometheus gives the registry's metrics (the metrics Service's name)."""
    proxy_job: str
    portus_deployment: str
    backup_cronjob: str | None
    backup_deadline_seconds: int


def alerts(targets: AlertTargets) -> list[Alert]:
    ns = f'namespace="{targets.namespace}"'
    registry = f'{ns}, job="{targets.registry_job}"'
    result = [
        Alert(
            "PortusRegistryHigh5xxRate",
            f'sum(rate(registry_http_requests_total{{{registry}, code=~"5.."}}[5m]))'
            f" / sum(rate(registry_http_requests_total{{{registry}}}[5m])) > 0.05",
            "10m", "critical",
            "More than 5% of registry requests fail with a 5xx",
            f"Pushes and pulls are failing. Check the registry's logs: kubectl -n {targets.namespace} logs "
            "deploy/registry.",
        ),
        Alert(
            "PortusRegistryStorageErrors",
            f'sum(rate(registry_http_requests_total{{{registry}, code=~"5..", handler=~"{STORAGE_HANDLERS}"}}[5m]))'
            " > 0",
            "5m", "critical",
            "The registry fails requests that read or write its storage",
            "Blob, manifest or tag requests end in 5xx: the storage driver is failing (volume full or read-only, "
            "object store unreachable or denying). The registry's /debug/health check reports the driver error.",
        ),
        Alert(
            "PortusProxyDown",
            f'up{{{ns}, job="{targets.proxy_job}"}} == 0 or nginx_up{{{ns}, job="{targets.proxy_job}"}} == 0',
            "5m", "critical",
            "A proxy pod's nginx does not answer",
            f"The proxy is the platform's only entry point: check kubectl -n {targets.namespace} get pods -l "
            "app.kubernetes.io/name=proxy.",
        ),
        Alert(
            "PortusProxyUpstreamUnavailable",
            # Open-source nginx counts no upstream errors; its upstreams being down is what causes them.
            f'up{{{registry}}} == 0'
            f' or kube_deployment_status_replicas_available{{{ns}, deployment="{targets.portus_deployment}"}} == 0',
            "5m", "critical",
            "The proxy's upstream (registry or Portus) is unavailable",
            "The proxy answers 502/504: the registry does not answer its metrics port, or no Portus pod is "
            "available.",
        ),
        Alert(
            "PortusProxyDroppingConnections",
            f'rate(nginx_connections_accepted{{{ns}, job="{targets.proxy_job}"}}[5m])'
            f' - rate(nginx_connections_handled{{{ns}, job="{targets.proxy_job}"}}[5m]) > 0',
            "5m", "warning",
            "nginx drops connections it accepted",
            "nginx hit its worker_connections limit; add proxy replicas or resources.",
        ),
    ]
    if targets.backup_cronjob:
        cronjob = f'{ns}, cronjob="{targets.backup_cronjob}"'
        result.append(Alert(
            "PortusDatabaseBackupFailed",
            # The last scheduled backup has had its deadline and has not succeeded (or none ever has).
            f"(time() - kube_cronjob_status_last_schedule_time{{{cronjob}}}) > {targets.backup_deadline_seconds}"
            f" unless on(namespace, cronjob)"
            f" (kube_cronjob_status_last_successful_time{{{cronjob}}}"
            f" >= on(namespace, cronjob) kube_cronjob_status_last_schedule_time{{{cronjob}}})",
            "5m", "critical",
            "The last database backup failed",
            f"kubectl -n {targets.namespace} get jobs -l app.kubernetes.io/component=backup, then the failed "
            "Job's logs; see README, Backups.",
        ))
    return result


def rule_groups(targets: AlertTargets) -> list[dict[str, Any]]:
    """``spec.groups`` of the PrometheusRule (also a valid Prometheus rules file under ``groups:``)."""
    return [{"name": "portus", "rules": [alert.rule() for alert in alerts(targets)]}]
