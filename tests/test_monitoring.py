"""Metrics and alerts: the Prometheus Operator objects are valid against their CRDs' own schemas, scrape
the ports the pods actually serve, only the monitoring namespace may reach exactly those ports, and the
alert rules are valid PromQL that fire (and stay quiet) when they should, checked by Prometheus's own
promtool."""

from __future__ import annotations

import copy
import shutil
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import stack_config
from tests.objects import Obj, get, pod_spec
from tests.render import Rendered
from tests.schema import validate_objects

METRICS = {"serviceMonitor": True, "namespace": "observability", "labels": {"release": "kube-prometheus-stack"}}


@pytest.fixture(scope="module")
def monitored(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**stack_config("prod"), "metrics": METRICS})


def test_monitoring_objects_are_valid_against_their_crds(monitored: Rendered) -> None:
    kinds = {o["kind"] for o in monitored.objects if o["apiVersion"] == "monitoring.coreos.com/v1"}
    assert kinds == {"ServiceMonitor", "PrometheusRule"}
    assert validate_objects(monitored.objects) == []
    # The CRD schema is no formality: a misspelt field is caught.
    broken = copy.deepcopy(get(monitored, "ServiceMonitor", "registry-metrics"))
    broken["spec"]["endpoints"][0]["intervall"] = "30s"
    assert any("intervall" in problem for problem in validate_objects([broken]))


def test_nothing_for_prometheus_without_service_monitors(prod: Rendered) -> None:
    assert not [o for o in prod.objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert not [o for o in prod.objects_of("Service") if o["metadata"]["name"].endswith("-metrics")]
    for policy in prod.objects_of("NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            assert rule["ports"][0]["port"] not in (5001, 9113), policy["metadata"]["name"]


def _pods_of(rendered: Rendered, selector: Mapping[str, str]) -> list[Obj]:
    return [
        workload for workload in rendered.objects_of("Deployment")
        if selector.items() <= workload["spec"]["template"]["metadata"]["labels"].items()
    ]


def test_each_service_monitor_scrapes_a_port_its_pods_serve(monitored: Rendered) -> None:
    scraped = {}
    for monitor in monitored.objects_of("ServiceMonitor"):
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        spec = monitor["spec"]
        services = [s for s in monitored.objects_of("Service")
                    if spec["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
        assert len(services) == 1, monitor["metadata"]["name"]
        assert spec["namespaceSelector"] == {"matchNames": [services[0]["metadata"]["namespace"]]}
        [endpoint] = spec["endpoints"]
        [port] = [p for p in services[0]["spec"]["ports"] if p["name"] == endpoint["port"]]
        [workload] = _pods_of(monitored, services[0]["spec"]["selector"])
        served = {(p["name"], p["containerPort"]) for c in pod_spec(workload)["containers"] for p in c.get("ports", [])}
        assert (port["targetPort"], port["port"]) in served
        scraped[workload["metadata"]["name"]] = port["port"]
    assert scraped == {"registry": 5001, "proxy": 9113}


def test_only_the_monitoring_namespace_reaches_only_the_metrics_ports(monitored: Rendered) -> None:
    from_monitoring = {}
    for policy in monitored.objects_of("NetworkPolicy"):
        for rule in policy["spec"].get("ingress", []):
            namespaces = [p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
                          for p in rule.get("from", []) if "namespaceSelector" in p]
            if "observability" in namespaces:
                from_monitoring[policy["metadata"]["name"]] = [p["port"] for p in rule["ports"]]
    assert from_monitoring == {"allow-registry": [5001], "allow-proxy": [9113]}


def _rule_groups(rendered: Rendered) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = get(rendered, "PrometheusRule", "portus")["spec"]["groups"]
    return groups


def test_the_alerts_that_matter_are_there(monitored: Rendered, prod: Rendered,
                                          render: Callable[[Mapping[str, object]], Rendered]) -> None:
    names = {rule["alert"] for group in _rule_groups(monitored) for rule in group["rules"]}
    assert {"PortusRegistryHigh5xxRate", "PortusRegistryStorageErrors", "PortusProxyUpstreamUnavailable",
            "PortusDatabaseBackupFailed"} <= names
    without_backup = render({**stack_config("prod"), "metrics": METRICS, "backup": {"enabled": False}})
    assert "PortusDatabaseBackupFailed" not in {
        rule["alert"] for group in _rule_groups(without_backup) for rule in group["rules"]
    }


@pytest.fixture(scope="module")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("this test needs promtool (Debian package prometheus; .ci/run installs it)", pytrace=False)
    return path


def _promtool(promtool: str, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=directory, capture_output=True, text=True, timeout=60, check=False)


BACKUP = 'namespace="portus", cronjob="mariadb-backup"'
REGISTRY = 'namespace="portus", job="registry-metrics"'


def _backup_case(successful_at: int | None, eval_minutes: int, firing: bool,
                 annotations: dict[str, str]) -> dict[str, Any]:
    """A backup scheduled at time 0; the last success at ``successful_at`` seconds (None: never)."""
    series = [{"series": f"kube_cronjob_status_last_schedule_time{{{BACKUP}}}", "values": "0+0x120"}]
    if successful_at is not None:
        series.append({"series": f"kube_cronjob_status_last_successful_time{{{BACKUP}}}",
                       "values": f"{successful_at}+0x120"})
    expected = [{"exp_labels": {"severity": "critical", "namespace": "portus", "cronjob": "mariadb-backup"},
                 "exp_annotations": annotations}]
    return {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [{"eval_time": f"{eval_minutes}m", "alertname": "PortusDatabaseBackupFailed",
                             "exp_alerts": expected if firing else []}],
    }


def test_alert_rules_are_valid_and_fire_when_they_should(monitored: Rendered, promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": _rule_groups(monitored)}))
    checked = _promtool(promtool, tmp_path, "check", "rules", "rules.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    annotations = {rule["alert"]: rule["annotations"] for group in _rule_groups(monitored) for rule in group["rules"]}

    def firing(alert: str) -> list[dict[str, Any]]:
        return [{"exp_labels": {"severity": "critical"}, "exp_annotations": annotations[alert]}]

    backup = annotations["PortusDatabaseBackupFailed"]

    failing_pushes = {
        "interval": "1m",
        "input_series": [
            {"series": f'registry_http_requests_total{{{REGISTRY}, code="500", handler="blob", method="put"}}',
             "values": "0+10x30"},
            {"series": f'registry_http_requests_total{{{REGISTRY}, code="201", handler="blob", method="put"}}',
             "values": "0+10x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "PortusRegistryHigh5xxRate", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "PortusRegistryHigh5xxRate",
             "exp_alerts": firing("PortusRegistryHigh5xxRate")},
            {"eval_time": "20m", "alertname": "PortusRegistryStorageErrors",
             "exp_alerts": firing("PortusRegistryStorageErrors")},
        ],
    }
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            failing_pushes,
            # Still running within its deadline: quiet. Past it without success: firing.
            _backup_case(successful_at=-86400, eval_minutes=30, firing=False, annotations=backup),
            _backup_case(successful_at=-86400, eval_minutes=70, firing=True, annotations=backup),
            # Succeeded two minutes after it started: quiet for the rest of the day.
            _backup_case(successful_at=120, eval_minutes=110, firing=False, annotations=backup),
            # Never succeeded at all.
            _backup_case(successful_at=None, eval_minutes=70, firing=True, annotations=backup),
        ],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    tested = _promtool(promtool, tmp_path, "test", "rules", "tests.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
