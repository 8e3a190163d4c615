"""The node-trust DaemonSet (``nodeTrust``): on every node, whatever its taints, it writes the CA the
``caCertificate`` output names where containerd (and Docker) look for it, with the least privilege that
can write a node's root-owned directories, in a namespace of its own."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping

import pytest

from components.node_trust import CONTAINERD_CERTS_DIR, DOCKER_CERTS_DIR
from tests.conftest import MINIMAL_CONFIG
from tests.objects import Obj, container, env, get, pod_spec
from tests.rehearsal.corporate import issue
from tests.render import Rendered
from tests.schema import validate_objects

NAMESPACE = "portus-node-trust"


@pytest.fixture(scope="module")
def trusted(render: Callable[[Mapping[str, object]], Rendered]) -> Rendered:
    return render({**MINIMAL_CONFIG, "exposure": "nodePort", "nodeTrust": {"enabled": True, "docker": True}})


def _daemonset(rendered: Rendered) -> Obj:
    return get(rendered, "DaemonSet", "node-trust")


def test_every_object_is_schema_valid(trusted: Rendered) -> None:
    assert validate_objects(trusted.objects) == []


def test_it_writes_the_ca_output_where_containerd_and_docker_read_it(trusted: Rendered) -> None:
    files = get(trusted, "ConfigMap", "node-trust")
    assert files["metadata"]["namespace"] == NAMESPACE
    registry = trusted.outputs["registryHost"]
    assert registry == "portus.example.com:30443"
    assert files["data"]["ca.crt"] == trusted.outputs["caCertificate"]
    hosts = tomllib.loads(files["data"]["hosts.toml"])
    # containerd 1.6 ignores a hosts.toml without a host table, and loose *.crt files once one exists.
    assert hosts["host"] == {f"https://{registry}": {"capabilities": ["pull", "resolve", "push"], "ca": "ca.crt"}}
    assert (hosts["server"], hosts["ca"]) == (f"https://{registry}", "ca.crt")
    variables = env(container(_daemonset(trusted)))
    assert variables["REGISTRY_HOST"] == registry
    assert variables["CONTAINERD_CERTS_DIR"] == CONTAINERD_CERTS_DIR
    assert variables["DOCKER_CERTS_DIR"] == DOCKER_CERTS_DIR
    # The paths the outputs tell a user are the ones the pods write.
    assert trusted.outputs["caInstallPaths"]["containerd"] == f"{CONTAINERD_CERTS_DIR}/{registry}/ca.crt"
    assert trusted.outputs["caInstallPaths"]["docker"] == f"{DOCKER_CERTS_DIR}/{registry}/ca.crt"


def test_a_company_ca_is_what_the_nodes_get(render: Callable[[Mapping[str, object]], Rendered]) -> None:
    ca = issue(["portus.example.com"]).root_pem
    rendered = render({**MINIMAL_CONFIG, "nodeTrust": {"enabled": True},
                       "tls": {"source": "secret", "secretName": "corporate-tls", "caCertificate": ca}})
    assert get(rendered, "ConfigMap", "node-trust")["data"]["ca.crt"] == ca
    assert [v["hostPath"]["path"] for v in pod_spec(_daemonset(rendered))["volumes"] if "hostPath" in v] == [
        CONTAINERD_CERTS_DIR
    ]


def test_it_mounts_only_the_certificate_directories_with_the_least_privilege_that_writes_them(
    trusted: Rendered,
) -> None:
    pod = pod_spec(_daemonset(trusted))
    host_paths = {v["name"]: v["hostPath"] for v in pod["volumes"] if "hostPath" in v}
    assert host_paths == {
        "containerd-certs": {"path": CONTAINERD_CERTS_DIR, "type": "DirectoryOrCreate"},
        "docker-certs": {"path": DOCKER_CERTS_DIR, "type": "DirectoryOrCreate"},
    }
    [writer] = pod["containers"]
    mounts = {m["name"]: m for m in writer["volumeMounts"]}
    assert set(mounts) == {"files", "containerd-certs", "docker-certs"}
    assert mounts["files"]["readOnly"] is True
    # Root on the node's root-owned directories, but no capability, no escalation, nothing else writable.
    assert writer["securityContext"] == {
        "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": False, "privileged": False,
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for field in ("hostNetwork", "hostPID", "hostIPC", "initContainers"):
        assert field not in pod, field
    assert pod["automountServiceAccountToken"] is False
    account = get(trusted, "ServiceAccount", pod["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False


def test_it_runs_on_every_node_with_tight_requests(trusted: Rendered) -> None:
    daemonset = _daemonset(trusted)
    pod = pod_spec(daemonset)
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert "affinity" not in pod
    resources = container(daemonset)["resources"]
    assert resources == {"requests": {"cpu": "5m", "memory": "8Mi"}, "limits": {"cpu": "50m", "memory": "16Mi"}}


def test_its_namespace_is_its_own_and_allows_host_directories(trusted: Rendered) -> None:
    namespaces = {n["metadata"]["name"]: n["metadata"]["labels"] for n in trusted.objects_of("Namespace")}
    # hostPath volumes break the baseline level as well as restricted: only privileged admits the pod.
    assert namespaces[NAMESPACE]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert namespaces["portus"]["pod-security.kubernetes.io/enforce"] == "restricted"
    in_namespace = {(o["kind"], o["metadata"]["name"]) for o in trusted.objects
                    if o["metadata"].get("namespace") == NAMESPACE}
    assert in_namespace == {("ConfigMap", "node-trust"), ("ServiceAccount", "node-trust"),
                            ("DaemonSet", "node-trust"), ("NetworkPolicy", "default-deny")}
    deny = get_in(trusted, "NetworkPolicy", "default-deny", NAMESPACE)["spec"]
    assert deny == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_nothing_on_the_nodes_unless_asked(dev: Rendered, prod: Rendered) -> None:
    for rendered in (dev, prod):
        assert rendered.objects_of("DaemonSet") == []
        assert NAMESPACE not in {n["metadata"]["name"] for n in rendered.objects_of("Namespace")}


def get_in(rendered: Rendered, kind: str, name: str, namespace: str) -> Obj:
    [found] = [o for o in rendered.objects_of(kind)
               if o["metadata"]["name"] == name and o["metadata"].get("namespace") == namespace]
    return found
