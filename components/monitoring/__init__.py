"""Metrics for Prometheus: the registry's own (its debug port) and the proxy's (the nginx exporter
sidecar), and, with ``metrics.serviceMonitor``, the Prometheus Operator objects that scrape them and
alert on what matters, plus the network flows that let the monitoring namespace scrape exactly those
ports.

ServiceMonitor and PrometheusRule are custom resources: pulumi-kubernetes awaits none by default
(provider/pkg/await/awaiters.go has no entry for them), so ``pulumi up`` only needs their CRDs
installed (by the Prometheus Operator) and never waits for Prometheus to pick them up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components import kube
from components.edge import proxy
from components.monitoring.rules import AlertTargets, rule_groups
from components.network import Flow, Outside
from components.registry import config_file as registry_config

API_VERSION = "monitoring.coreos.com/v1"
COMPONENT = "metrics"
SCRAPE_INTERVAL = "30s"


@dataclass(frozen=True)
class MetricsConfig:
    """``portus:metrics``."""

    service_monitor: bool = False
    namespace: str = "monitoring"
    """Where Prometheus runs: the only namespace allowed to scrape."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels on the ServiceMonitors and the PrometheusRule, for the Prometheus's selectors."""


@dataclass(frozen=True)
class Target:
    """Pods that serve Prometheus metrics on a named container port."""

    workload: str
    """The workload's name: its pods' selector, and ``<workload>-metrics`` for the scrape Service."""
    port_name: str
    port: int

    @property
    def service(self) -> str:
        return f"{self.workload}-metrics"


REGISTRY = Target("registry", "debug", registry_config.DEBUG_PORT)
PROXY = Target(proxy.NAME, proxy.EXPORTER_PORT_NAME, proxy.EXPORTER_PORT)
TARGETS = (REGISTRY, PROXY)


def scrape_flows(config: MetricsConfig) -> list[Flow]:
    """The monitoring namespace may open the metrics ports, and nothing else, when it scrapes them."""
    if not config.service_monitor:
        return []
    return [Flow(Outside(namespace=config.namespace), target.workload, target.port) for target in TARGETS]


@dataclass
class MonitoringArgs:
    namespace: pulumi.Input[str]
    namespace_name: str
    """The namespace's name as text, for the alert expressions."""
    config: MetricsConfig
    portus_deployment: str
    backup_cronjob: str | None
    """The backup CronJob's name; None without backups."""
    backup_deadline_seconds: int


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        for target in TARGETS:
            # Headless: Prometheus scrapes each pod, and pulumi-kubernetes readies a headless Service at once.
            service = kube.cluster_ip_service(
                f"{name}-{target.workload}", target.service, args.namespace, COMPONENT,
                [k8s.core.v1.ServicePortArgs(name=target.port_name, port=target.port, target_port=target.port_name)],
                child, headless=True, selector=kube.selector_labels(target.workload),
            )
            k8s.apiextensions.CustomResource(
                f"{name}-{target.workload}-monitor",
                api_version=API_VERSION,
                kind="ServiceMonitor",
                metadata=self._metadata(target.service, args),
                spec={
                    "selector": {"matchLabels": kube.selector_labels(target.service)},
                    "namespaceSelector": {"matchNames": [args.namespace_name]},
                    "endpoints": [{
                        "port": target.port_name, "path": "/metrics", "scheme": "http",
                        "interval": SCRAPE_INTERVAL,
                    }],
                },
                opts=pulumi.ResourceOptions(parent=self, depends_on=[service]),
            )
        k8s.apiextensions.CustomResource(
            f"{name}-rules",
            api_version=API_VERSION,
            kind="PrometheusRule",
            metadata=self._metadata("portus", args),
            spec={"groups": rule_groups(AlertTargets(
                namespace=args.namespace_name,
                registry_job=REGISTRY.service,
                proxy_job=PROXY.service,
                portus_deployment=args.portus_deployment,
                backup_cronjob=args.backup_cronjob,
                backup_deadline_seconds=args.backup_deadline_seconds,
            ))},
            opts=child,
        )
        self.register_outputs({})

    @staticmethod
    def _metadata(name: str, args: MonitoringArgs) -> k8s.meta.v1.ObjectMetaArgs:
        return k8s.meta.v1.ObjectMetaArgs(
            name=name, namespace=args.namespace, labels={**kube.labels(name, COMPONENT), **args.config.labels},
        )
