"""What a security review and an on-call engineer check: restricted pods, probes, rollouts, network
isolation, secrets that stay secret, and data that no upgrade can replace."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest
import yaml

from components import network
from tests.conftest import CONFIG_SECRETS, SETTINGS_SECRETS, behind_the_proxy, stack_config
from tests.objects import (
    Obj,
    all_containers,
    container,
    get,
    mount_of,
    named_prefix,
    pod_spec,
    pod_template,
    secret_files,
)
from tests.render import Rendered

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")
# Containers that serve a port have probes; the background worker is its container's only process.
PROBED = {"portus", "registry", "mariadb", "nginx"}


def workloads(rendered: Rendered) -> Iterator[Obj]:
    for kind in WORKLOAD_KINDS:
        yield from rendered.objects_of(kind)


@pytest.fixture(params=["dev", "prod", "node_port", "integrations", "scale"])
def stack(request: pytest.FixtureRequest) -> Rendered:
    rendered: Rendered = request.getfixturevalue(request.param)
    return rendered


def test_every_container_is_restricted_non_root_with_a_read_only_root(stack: Rendered) -> None:
    for workload in workloads(stack):
        pod = pod_spec(workload)
        name = workload["metadata"]["name"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] > 0 and security["runAsGroup"] > 0, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        for spec in all_containers(workload):
            context = spec["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, (name, spec["name"])
            assert context["capabilities"] == {"drop": ["ALL"]}, (name, spec["name"])
            assert context["readOnlyRootFilesystem"] is True, (name, spec["name"])
            assert context["runAsNonRoot"] is True, (name, spec["name"])
        claims = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        writable = claims | {v["name"] for v in pod["volumes"] if "emptyDir" in v or "persistentVolumeClaim" in v}
        for spec in all_containers(workload):
            for mount in spec.get("volumeMounts", []):
                if mount["name"] not in writable:
                    assert mount.get("readOnly") is True, (name, mount)


def test_each_long_running_workload_has_its_own_service_account(stack: Rendered) -> None:
    accounts = {o["metadata"]["name"]: o for o in stack.objects_of("ServiceAccount")}
    long_running = [w for w in workloads(stack) if w["kind"] in ("Deployment", "StatefulSet")]
    used = {pod_spec(w)["serviceAccountName"] for w in long_running}
    # Portus's background worker runs the same program under the same identity.
    assert used == {w["metadata"]["name"] for w in long_running} - {"portus-background"}
    for name in used:
        assert accounts[name]["automountServiceAccountToken"] is False


def test_namespace_enforces_the_restricted_pod_security_standard(stack: Rendered) -> None:
    labels = stack.objects_of("Namespace")[0]["metadata"]["labels"]
    for mode in ("enforce", "warn", "audit"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_every_container_has_requests_and_limits(stack: Rendered) -> None:
    for workload in workloads(stack):
        for spec in all_containers(workload):
            for kind in ("requests", "limits"):
                assert set(spec["resources"][kind]) == {"cpu", "memory"}, (workload["metadata"]["name"], spec["name"])


def test_resources_come_from_config(prod: Rendered) -> None:
    resources = container(get(prod, "Deployment", "portus"))["resources"]
    assert resources == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}}


def test_probes_match_each_program(stack: Rendered) -> None:
    for kind in ("Deployment", "StatefulSet"):
        for workload in stack.objects_of(kind):
            for spec in pod_spec(workload)["containers"]:
                if spec["name"] in PROBED:
                    assert "readinessProbe" in spec and "livenessProbe" in spec, spec["name"]
    portus = container(get(stack, "Deployment", "portus"))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        # _ping answers once Rails runs; /api/v1/health fails until a registry is set up.
        assert portus[probe]["httpGet"] == {"path": "/api/v1/_ping", "port": "https", "scheme": "HTTPS"}
    registry = container(get(stack, "Deployment", "registry"))
    assert registry["readinessProbe"]["httpGet"]["path"] == "/debug/health"  # /v2/ answers 401
    for proxy in (container(d, "nginx") for d in stack.objects_of("Deployment") if d["metadata"]["name"] == "proxy"):
        assert proxy["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    for database in stack.objects_of("StatefulSet"):
        assert "startupProbe" in container(database)


@pytest.mark.parametrize(("stack_name", "expected"), [("prod", {"portus"}), ("node_port", {"proxy"})])
def test_rollouts_suit_the_volumes_and_replicas(request: pytest.FixtureRequest, stack_name: str,
                                                expected: set[str]) -> None:
    rendered: Rendered = request.getfixturevalue(stack_name)
    assert get(rendered, "Deployment", "registry")["spec"]["strategy"]["type"] == "Recreate"
    budgets = {
        o["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
        for o in rendered.objects_of("PodDisruptionBudget")
    }
    multi = {w["metadata"]["name"] for w in rendered.objects_of("Deployment") if w["spec"]["replicas"] > 1}
    assert multi == expected
    assert budgets == multi


@pytest.mark.parametrize(("base", "rolled"), [
    (stack_config("prod"), ("registry",)),
    (behind_the_proxy(stack_config("prod")), ("proxy", "registry")),
])
def test_config_and_secret_changes_roll_the_pods(render: Callable[[Mapping[str, object]], Rendered],
                                                 base: dict[str, object], rolled: tuple[str, ...]) -> None:
    changed = render({**base, "logLevel": "debug"})
    original = render(base)
    for name in rolled:
        before = get(original, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        after = get(changed, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert before["checksum/config"] != after["checksum/config"], name
    for workload in workloads(original):
        if workload["kind"] not in ("Job", "CronJob"):
            assert any(k.startswith("checksum/") for k in workload["spec"]["template"]["metadata"]["annotations"])


def _policy_allows(rendered: Rendered, source: Mapping[str, str] | None, target: Mapping[str, str], port: int) -> bool:
    """Whether the rendered policies let pods labelled ``source`` (None: outside) reach ``target`` on ``port``."""
    def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())

    def ports_match(rule: Mapping[str, Any]) -> bool:
        return any(p["port"] == port for p in rule.get("ports", []))

    policies = [p["spec"] for p in rendered.objects_of("NetworkPolicy")]
    ingress_ok = any(
        selects(p["podSelector"], target) and any(
            ports_match(rule) and (
                "from" not in rule or any(
                    source is not None and "podSelector" in peer and selects(peer["podSelector"], source)
                    for peer in rule["from"]
                )
            )
            for rule in p.get("ingress", [])
        )
        for p in policies
    )
    egress_ok = source is None or any(
        selects(p["podSelector"], source) and any(
            ports_match(rule) and any("podSelector" in peer and selects(peer["podSelector"], target)
                                      for peer in rule["to"])
            for rule in p.get("egress", [])
        )
        for p in policies
    )
    return ingress_ok and egress_ok


def test_network_policies_deny_by_default_and_allow_only_the_platform_flows(stack: Rendered) -> None:
    default_deny = get(stack, "NetworkPolicy", "default-deny")["spec"]
    assert default_deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    in_cluster_database = bool(stack.objects_of("StatefulSet"))
    clients = [network.Flow(client, "database", 3306) for client in network.DATABASE_CLIENTS]
    for flow in [*network.FLOWS, *(clients if in_cluster_database else [])]:
        assert isinstance(flow.source, str) and isinstance(flow.target, str)
        assert _policy_allows(stack, network.PEERS[flow.source], network.PEERS[flow.target], flow.port), flow
    for client in network.DATABASE_CLIENTS:
        assert _policy_allows(stack, network.PEERS[client], network.PEERS["database"], 3306) is in_cluster_database
    # Nothing the flows leave out: the proxy never reaches the database, the registry never the proxy.
    assert not _policy_allows(stack, network.PEERS["proxy"], network.PEERS["database"], 3306)
    assert not _policy_allows(stack, network.PEERS["registry"], network.PEERS["proxy"], 8443)
    assert not _policy_allows(stack, network.PEERS["bootstrap"], network.PEERS["portus"], 3000)
    dns = get(stack, "NetworkPolicy", "allow-dns")["spec"]["egress"][0]
    assert {(p["protocol"], p["port"]) for p in dns["ports"]} == {("UDP", 53), ("TCP", 53)}


def _from_outside(rendered: Rendered, policy: str) -> list[dict[str, Any]]:
    """Ingress rules of a policy whose peers are not pods of the namespace (or that name no peer)."""
    rules = get(rendered, "NetworkPolicy", policy)["spec"].get("ingress", [])
    return [r for r in rules if "from" not in r or any("podSelector" not in peer for peer in r["from"])]


def test_edge_traffic_comes_only_from_the_ingress_controller(dev: Rendered, node_port: Rendered) -> None:
    controller = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    # Through the Ingresses: the controller reaches Portus and the registry, and nothing else is open.
    assert _from_outside(dev, "allow-portus") == [{"from": controller, "ports": [{"protocol": "TCP", "port": 3000}]}]
    assert _from_outside(dev, "allow-registry") == [{"from": controller, "ports": [{"protocol": "TCP", "port": 5000}]}]
    assert "allow-proxy" not in {p["metadata"]["name"] for p in dev.objects_of("NetworkPolicy")}
    # The realm resolves to Portus inside its pods: Portus and the worker may reach Portus, not the proxy.
    for source in ("portus", "background"):
        assert _policy_allows(dev, network.PEERS[source], network.PEERS["portus"], 3000), source
        assert not _policy_allows(dev, network.PEERS[source], network.PEERS["proxy"], 8443), source
    # Through the proxy: it is open to anyone, on its port alone, and Portus and the registry are not.
    assert _from_outside(node_port, "allow-proxy") == [{"ports": [{"protocol": "TCP", "port": 8443}]}]
    assert _from_outside(node_port, "allow-portus") == _from_outside(node_port, "allow-registry") == []
    for source in ("portus", "background"):
        assert _policy_allows(node_port, network.PEERS[source], network.PEERS["proxy"], 8443), source
        assert not _policy_allows(node_port, network.PEERS[source], network.PEERS["portus"], 3000), source


# ----------------------------------------------------------------------------------- data safety

STATEFUL_TYPES = (
    "kubernetes:core/v1:PersistentVolumeClaim",
    "kubernetes:core/v1:Namespace",
    "tls:index/privateKey:PrivateKey",
    "tls:index/selfSignedCert:SelfSignedCert",
    "tls:index/certRequest:CertRequest",
    "tls:index/locallySignedCert:LocallySignedCert",
    "random:index/randomPassword:RandomPassword",
    "random:index/randomId:RandomId",
)


def _without_generated_material(value: Any) -> Any:
    """Keys and certificates flowing between these resources differ per test run (the doubles
    generate fresh ones) but are stable under the engine when their own producer's inputs are."""
    if isinstance(value, dict):
        return {k: _without_generated_material(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_generated_material(v) for v in value]
    return "<generated PEM>" if isinstance(value, str) and "-----BEGIN" in value else value


def _stateful_inputs(rendered: Rendered) -> dict[str, Any]:
    """Inputs of everything whose replacement would lose data or a credential, by URN."""
    result = {
        r.options["urn"]: _without_generated_material(r.inputs) for r in rendered.resources if r.type in STATEFUL_TYPES
    }
    statefulset = next(r for r in rendered.resources if r.type == "kubernetes:apps/v1:StatefulSet")
    result[statefulset.options["urn"]] = {
        "claims": statefulset.inputs["spec"]["volumeClaimTemplates"],
        "name": statefulset.inputs["metadata"]["name"],
        "selector": statefulset.inputs["spec"]["selector"],
        "serviceName": statefulset.inputs["spec"]["serviceName"],
    }
    return result


def test_upgrades_and_tuning_never_replace_volumes_keys_or_passwords(
    render: Callable[[Mapping[str, object]], Rendered],
) -> None:
    base = stack_config("prod")
    tuned = {
        **base,
        "portusImage": "opensuse/portus:2.4.4",
        "registryImage": "registry:2.8.4",
        "databaseImage": "mariadb:10.11.11",
        "portusReplicas": 3,
        "logLevel": "warn",
        "resources": {"database": {"limits": {"memory": "4Gi"}}, "registry": {"requests": {"cpu": "1"}}},
    }
    before, after = _stateful_inputs(render(base)), _stateful_inputs(render(tuned))
    assert len(before) >= 20
    assert before == after
    proxied = behind_the_proxy(base)
    tuned_proxy = {**proxied, "proxyImage": "nginxinc/nginx-unprivileged:1.27.4-alpine", "proxyReplicas": 3}
    assert _stateful_inputs(render(proxied)) == _stateful_inputs(render(tuned_proxy))


# Where the objects that hold data, keys and passwords have been since the first release (their URNs' type
# chains, as the engine makes them: the platform, then each parent). A resource under a new URN is a new
# resource: Pulumi would create it and delete the old one, with its data.
PLATFORM = "portus:platform:PortusPlatform"
KEPT_URNS = {
    f"{PLATFORM}${urn}" for urn in (
        "portus:namespace:PlatformNamespace$kubernetes:core/v1:Namespace::namespace",
        "portus:registry:Registry$kubernetes:core/v1:PersistentVolumeClaim::registry-data",
        "portus:database:Database$kubernetes:apps/v1:StatefulSet::database",
        *(f"portus:pki:Pki$tls:index/privateKey:PrivateKey::pki-{key}"
          for key in ("ca", "proxy", "portus", "registry", "token")),
        *(f"portus:pki:Pki$tls:index/selfSignedCert:SelfSignedCert::pki-{cert}" for cert in ("ca", "token")),
        "random:index/randomPassword:RandomPassword::registry-http-secret",
        *(f"portus:database:Database$random:index/randomPassword:RandomPassword::database-{name}-password"
          for name in ("portus", "root")),
        *(f"portus:portus:Portus$random:index/randomPassword:RandomPassword::portus-{name}"
          for name in ("portus-password", "admin-password", "secret-key-base")),
    )
}
# Objects whose name a new resource could not take while the old one exists (the API server refuses a
# second object of the same name): they keep their URN, or an alias to it (the edge certificate's Secret
# ``proxy-tls``: tests/test_edge_certificate.py).
INGRESS_URN = f"{PLATFORM}$portus:ingress:PublicIngress$kubernetes:networking.k8s.io/v1:Ingress::ingress"


@pytest.mark.parametrize("stack_name", ["dev", "node_port"])
def test_an_upgrade_finds_data_keys_and_passwords_where_they_were(request: pytest.FixtureRequest,
                                                                  stack_name: str) -> None:
    rendered: Rendered = request.getfixturevalue(stack_name)
    urns = {record.options["urn"].split("::", 2)[2] for record in rendered.resources}
    assert urns >= KEPT_URNS
    assert (INGRESS_URN in urns) == (stack_name == "dev")


def _generated_secrets(rendered: Rendered) -> list[str]:
    """Every secret the stack holds: generated ones, and the credentials its config gives Portus."""
    values: list[object] = [*SETTINGS_SECRETS.values(), *CONFIG_SECRETS.values()]
    for record in rendered.resources:
        if record.type in ("random:index/randomPassword:RandomPassword", "random:index/randomString:RandomString"):
            values.append(record.outputs["result"])
        elif record.type == "random:index/randomId:RandomId":
            values += [record.outputs["hex"], record.outputs["b64Std"]]
        elif record.type == "tls:index/privateKey:PrivateKey":
            values += [record.outputs["privateKeyPem"], record.outputs["privateKeyPemPkcs8"]]
    return [str(value) for value in values]


def _places_secrets_must_not_be(rendered: Rendered) -> Iterator[tuple[str, str]]:
    for obj in rendered.objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["kind"] != "Secret":
            yield name, yaml.safe_dump(obj)
        yield f"{name} annotations", json.dumps(obj["metadata"].get("annotations", {}))
        if obj["kind"] in WORKLOAD_KINDS:
            yield f"{name} pod annotations", json.dumps(pod_template(obj)["metadata"].get("annotations", {}))
    for key, value in rendered.outputs.items():
        if key not in rendered.secret_outputs:
            yield f"output {key}", json.dumps(value)
    # Resource IDs are never encrypted in state (pulumi/pulumi#2717).
    for record in rendered.resources:
        yield f"ID of {record.type} {record.name}", str(record.id)


@pytest.mark.parametrize("name", ["dev", "prod", "node_port", "integrations", "config_secrets"])
def test_secrets_reach_kubernetes_only_through_secrets(name: str, request: pytest.FixtureRequest) -> None:
    stack: Rendered = request.getfixturevalue(name)
    secrets = _generated_secrets(stack)
    assert len(secrets) >= 8
    if name == "config_secrets":
        in_secrets = "".join(json.dumps(o.get("stringData", {})) for o in stack.objects_of("Secret"))
        assert all(secret in in_secrets for secret in CONFIG_SECRETS.values())
    for place, text in _places_secrets_must_not_be(stack):
        for secret in secrets:
            assert secret not in text, f"a secret appears in {place}"
    for workload in workloads(stack):
        for spec in all_containers(workload):
            files = secret_files(workload, spec)
            for item in spec.get("env", []):
                if any(word in item["name"] for word in ("PASSWORD", "SECRET", "TOKEN")) and "value" in item:
                    # A path to a mounted Secret's key is fine; a value is not.
                    assert item["name"].removesuffix("_FILE") in files, (
                        f"{item['name']} is a plain env value in {workload['metadata']['name']}"
                    )


def test_no_portus_container_takes_a_secret_through_its_environment(stack: Rendered) -> None:
    """checkov CKV_K8S_35: secrets as files. Every Portus container reads them through the entry."""
    portus_pods = [w for w in workloads(stack) if container_images(w) & {"opensuse/portus:2.4.3"}]
    assert len(portus_pods) == 4  # web, background, migration, bootstrap
    for workload in portus_pods:
        for spec in all_containers(workload):
            refs = [e["name"] for e in spec.get("env", []) if "valueFrom" in e]
            assert refs == [], (workload["metadata"]["name"], refs)
        main = pod_spec(workload)["containers"][0]
        assert {"PORTUS_DB_PASSWORD", "PORTUS_SECRET_KEY_BASE", "PORTUS_PASSWORD"} <= set(secret_files(workload, main))


def container_images(workload: Obj) -> set[str]:
    return {spec["image"] for spec in all_containers(workload)}


# Workload -> (its pod's UID, the UID that wrote its kept volume in earlier releases, or None)
HIGH_UIDS = {"proxy": (10101, None), "registry": (11000, 1000), "mariadb": (10999, 999)}


def test_registry_proxy_and_database_run_as_high_uids_that_own_their_volumes(stack: Rendered) -> None:
    running = {w["metadata"]["name"]: w for w in workloads(stack)}
    assert "registry" in running
    for name, (uid, previous) in HIGH_UIDS.items():
        if name not in running:  # no proxy with the Ingresses, no MariaDB with an external database
            continue
        workload = running[name]
        security = pod_spec(workload)["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (uid, uid, uid), name
        assert security["fsGroupChangePolicy"] == "OnRootMismatch"
        for spec in all_containers(workload):
            # Only the init container that hands an earlier release's files over runs as another user.
            expected = previous if spec["name"] == "file-ownership" else uid
            assert spec["securityContext"].get("runAsUser", uid) == expected, (name, spec["name"])
        handover = [c for c in all_containers(workload) if c["name"] == "file-ownership"]
        # Object storage leaves the registry no volume of an earlier release's files to hand over.
        holds_data = bool(workload["spec"].get("volumeClaimTemplates")) or any(
            "persistentVolumeClaim" in volume for volume in pod_spec(workload)["volumes"])
        if previous is None or not holds_data:
            assert handover == [], name
            continue
        (init,) = handover
        data = init["volumeMounts"][0]["mountPath"]
        assert init["command"] == [
            "find", data, "(", "-type", "d", "!", "-user", str(previous), "!", "-path", data, ")", "-prune", "-o",
            "-user", str(previous), "!", "-type", "l",
            "(", "!", "-group", str(uid), "-o", "!", "-perm", "-060", "-o", "-type", "d", "!", "-perm", "-010", ")",
            "-exec", "chgrp", str(uid), "{}", "+", "-exec", "chmod", "g+rwX", "{}", "+",
        ]
        assert init is pod_spec(workload)["initContainers"][0], "the handover must run before anything uses the data"
        assert data in {m["mountPath"] for m in container(workload)["volumeMounts"]}


def test_database_takes_its_passwords_as_files(stack: Rendered) -> None:
    for statefulset in stack.objects_of("StatefulSet"):  # none with an external database
        for spec in all_containers(statefulset):
            assert all("valueFrom" not in item for item in spec.get("env", [])), spec["name"]
        server = {e["name"]: e.get("value") for e in container(statefulset)["env"]}
        credentials = next(v for v in pod_spec(statefulset)["volumes"] if v["name"] == "credentials")["secret"]
        assert credentials["defaultMode"] == 0o440  # the pod's group (fsGroup) reads them, nobody else
        mounted = mount_of(statefulset, container(statefulset), "Secret", credentials["secretName"])
        assert server["MARIADB_ROOT_PASSWORD_FILE"] == f"{mounted}/root-password"
        assert server["MARIADB_PASSWORD_FILE"] == f"{mounted}/password"
        assert {"MARIADB_ROOT_PASSWORD", "MARIADB_PASSWORD"}.isdisjoint(server)


def test_secret_outputs_stay_secret_in_state(stack: Rendered) -> None:
    for record in stack.resources:
        if record.type == "tls:index/privateKey:PrivateKey":
            assert "privateKeyPem" in record.secret_outputs
        if record.type == "random:index/randomPassword:RandomPassword":
            assert "result" in record.secret_outputs
        if record.type == "random:index/randomId:RandomId":
            assert "hex" in record.secret_outputs


def test_portus_upgrade_migrates_before_web_and_background_roll(
    render: Callable[[Mapping[str, object]], Rendered], prod: Rendered,
) -> None:
    migration = named_prefix(prod, "Job", "portus-migrate-")
    assert '"$bundler" exec rake portus:db:configure\n' in container(migration)["command"][-1]
    migration_urn = next(r.options["urn"] for r in prod.resources if r.name == "portus-migrate")
    for name in ("portus", "portus-background"):
        record = next(r for r in prod.resources if r.type == "kubernetes:apps/v1:Deployment" and r.name == name)
        assert migration_urn in record.options["dependencies"], name

    upgraded = render({**stack_config("prod"), "portusImage": "opensuse/portus:2.4.4"})
    new_migration = named_prefix(upgraded, "Job", "portus-migrate-")
    assert new_migration["metadata"]["name"] != migration["metadata"]["name"]
    assert container(new_migration)["image"] == "opensuse/portus:2.4.4"
    same = render({**stack_config("prod"), "logLevel": "warn"})
    assert named_prefix(same, "Job", "portus-migrate-")["metadata"]["name"] == migration["metadata"]["name"]


def test_migration_writes_schema_dump_to_a_writable_copy_of_db(prod: Rendered) -> None:
    # Rails 4.2 rewrites db/schema.rb after `db:migrate`; the root filesystem is read-only.
    migration = named_prefix(prod, "Job", "portus-migrate-")
    copy = next(c for c in pod_spec(migration)["initContainers"] if c["name"] == "app-db")
    assert copy["command"] == ["cp", "-R", "/srv/Portus/db/.", "/writable-db/"]
    mounts = {m["mountPath"]: m["name"] for m in container(migration)["volumeMounts"]}
    assert mounts["/srv/Portus/db"] == copy["volumeMounts"][0]["name"]


def test_portus_waits_for_its_database_and_registry_but_its_service_does_not(prod: Rendered) -> None:
    by_name = {(r.type.rsplit(":", 1)[-1], r.name): r for r in prod.resources}
    migration = by_name["Job", "portus-migrate"].options["dependencies"]
    assert by_name["StatefulSet", "database"].options["urn"] in migration
    assert by_name["Deployment", "registry"].options["urn"] in migration
    # nginx resolves the upstream names when it starts: the Services exist from the beginning.
    for service in ("portus-svc", "registry-svc"):
        assert by_name["Service", service].options["dependencies"] == [by_name["Namespace", "namespace"].options["urn"]]


def test_ingresses_route_only_once_the_policies_let_the_controller_through(dev: Rendered) -> None:
    # Upgrading from the proxy, the controller's traffic moves to Portus and the registry: the policies
    # that open their ports to it must be applied before any Ingress sends it there.
    opening = {
        record.options["urn"] for record in dev.resources
        if record.type == "kubernetes:networking.k8s.io/v1:NetworkPolicy"
        and record.outputs["metadata"]["name"] in ("allow-portus", "allow-registry")
    }
    ingresses = [r for r in dev.resources if r.type == "kubernetes:networking.k8s.io/v1:Ingress"]
    assert len(opening) == 2 and len(ingresses) == 3
    for ingress in ingresses:
        assert opening <= set(ingress.options["dependencies"]), ingress.name


def test_nginx_starts_one_worker_per_cpu_of_its_limit(render: Callable[[Mapping[str, object]], Rendered]) -> None:
    # `auto` would count the node's CPUs, whatever the container's limit.
    def workers(cpu: str | None) -> tuple[str, str]:
        resources = {"portus:resources": {"proxy": {"limits": {"cpu": cpu}}}} if cpu else {}
        rendered = render({**behind_the_proxy(stack_config("dev")), **resources})
        conf = get(rendered, "ConfigMap", "proxy-config")["data"]["nginx.conf"]
        limit = container(get(rendered, "Deployment", "proxy"), "nginx")["resources"]["limits"]["cpu"]
        return limit, conf.split("worker_processes ", 1)[1].split(";", 1)[0]

    assert (workers(None), workers("4"), workers("1500m")) == (("2", "2"), ("4", "4"), ("1500m", "2"))
