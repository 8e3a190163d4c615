"""Small readers for rendered Kubernetes objects, so tests state intent rather than dict paths."""

from __future__ import annotations

import base64
from typing import Any

import yaml

from tests.render import Rendered

Obj = dict[str, Any]


def get(rendered: Rendered, kind: str, name: str) -> Obj:
    matches = [o for o in rendered.objects_of(kind) if o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def named_prefix(rendered: Rendered, kind: str, prefix: str) -> Obj:
    matches = [o for o in rendered.objects_of(kind) if o["metadata"]["name"].startswith(prefix)]
    assert len(matches) == 1, f"expected one {kind}/{prefix}*, found {len(matches)}"
    return matches[0]


def pod_template(workload: Obj) -> Obj:
    """The pod template of a Deployment, StatefulSet, Job or CronJob."""
    spec = workload["spec"]["jobTemplate"]["spec"] if workload["kind"] == "CronJob" else workload["spec"]
    template: Obj = spec["template"]
    return template


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = pod_template(workload)["spec"]
    return spec


def all_containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def container(workload: Obj, name: str | None = None) -> Obj:
    containers = pod_spec(workload)["containers"]
    if name is None:
        assert len(containers) == 1
        return containers[0]
    return next(c for c in containers if c["name"] == name)


def env(container_spec: Obj) -> dict[str, Any]:
    """Plain values as strings; values from Secrets as ``("secret", name, key)``."""
    result: dict[str, Any] = {}
    for item in container_spec.get("env", []):
        if "value" in item:
            result[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            result[item["name"]] = ("secret", ref["name"], ref["key"])
    return result


def secret_files(workload: Obj, container_spec: Obj) -> dict[str, tuple[str, str, str]]:
    """Each ``<NAME>_FILE`` variable whose path is a Secret's key mounted in the container, as
    ``NAME -> ("secret", secret name, key)``."""
    volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
    result = {}
    for name, path in env(container_spec).items():
        if not name.endswith("_FILE") or not isinstance(path, str):
            continue
        for mount in container_spec.get("volumeMounts", []):
            if not path.startswith(mount["mountPath"] + "/"):
                continue
            file = path[len(mount["mountPath"]) + 1:]
            volume = volumes[mount["name"]]
            sources = volume["projected"]["sources"] if "projected" in volume else [
                {"secret": {"name": volume["secret"]["secretName"], **volume["secret"]}}
            ] if "secret" in volume else []
            for source in sources:
                secret = source.get("secret")
                if secret is None:
                    continue
                # Without items, every key of the Secret is a file of its own name.
                paths = {item["path"]: item["key"] for item in secret.get("items", [])} or {file: file}
                if file in paths:
                    result[name.removesuffix("_FILE")] = ("secret", secret["name"], paths[file])
    return result


def secret_data(secret: Obj) -> dict[str, str]:
    data = {key: base64.b64decode(value).decode() for key, value in secret.get("data", {}).items()}
    return {**data, **secret.get("stringData", {})}


def mount_of(workload: Obj, container_spec: Obj, source_kind: str, source_name: str) -> str:
    """Where ``container_spec`` mounts the ConfigMap/Secret ``source_name`` (the directory or file)."""
    field = {"ConfigMap": "configMap", "Secret": "secret"}[source_kind]
    name_key = "name" if source_kind == "ConfigMap" else "secretName"
    volumes = [v["name"] for v in pod_spec(workload)["volumes"] if v.get(field, {}).get(name_key) == source_name]
    mounts = [m["mountPath"] for m in container_spec.get("volumeMounts", []) if m["name"] in volumes]
    assert mounts, f"{container_spec['name']} does not mount {source_kind}/{source_name}"
    return mounts[0]


def registry_config(rendered: Rendered) -> Obj:
    config: Obj = yaml.safe_load(get(rendered, "ConfigMap", "registry-config")["data"]["config.yml"])
    return config
