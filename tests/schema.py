"""Strict Kubernetes schema validation of rendered objects.

Uses the strict JSON schemas shipped by ``kubernetes-validate`` (unknown fields
rejected), against Kubernetes 1.30 and the newest version the installed package
knows. Custom resources are checked against their CRD's own OpenAPI v3 schema
(the CRD files in ``tests/crds/``), with unknown fields rejected as the API
server prunes them. CLI: ``python -m tests.schema OUT_DIR`` checks every
``*.yaml`` there.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from kubernetes_validate import utils as kv
from referencing import Registry, Resource

BASELINE_VERSION = "1.30.0"
CRD_DIR = Path(__file__).resolve().parent / "crds"


def newest_version() -> str:
    """The newest Kubernetes version whose schemas the installed kubernetes-validate ships."""
    return kv.latest_version()


def default_versions() -> tuple[str, str]:
    return (BASELINE_VERSION, newest_version())


@cache
def _validator(
    version: str, api_version: str, kind: str
) -> jsonschema.protocols.Validator:
    # Same file layout and lookup as kubernetes_validate.validate(strict=True),
    # kept here so every error is reported, not only the first one.
    group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema_dir = f"kubernetes-json-schema/v{version}-local-strict"
    schema = kv.schema_contents(
        f"{schema_dir}/{kind.lower()}-{group_version}.json", version
    )
    definitions = kv.schema_contents(f"{schema_dir}/_definitions.json", version)
    registry: Registry = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _closed(schema: Any) -> Any:
    """A structural schema with every object that lists its properties closed to others."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


@cache
def _custom_resource_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """``(apiVersion, kind)`` -> a validator for each version of each CRD in CRD_DIR."""
    validators = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        for version in spec["versions"]:
            schema = _closed(version["schema"]["openAPIV3Schema"])
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            validators[key] = jsonschema.validators.Draft202012Validator(schema)
    return validators


def _describe(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    name = metadata.get("name", "<unnamed>")
    namespace = metadata.get("namespace")
    return (
        f"{obj.get('kind', '<no kind>')}/{namespace + '/' if namespace else ''}{name}"
    )


def validate_object(obj: Mapping[str, Any], version: str) -> list[str]:
    """Human-readable problems of one object against one Kubernetes version's strict schema."""
    where = f"{_describe(obj)} (Kubernetes {version})"
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [f"{where}: apiVersion and kind must be strings"]
    custom = _custom_resource_validators().get((api_version, kind))
    if custom is not None:
        where = f"{_describe(obj)} (its CRD)"
        metadata = obj.get("metadata") or {}
        problems = [f"{where}: metadata.{field} must be a non-empty string"
                    for field in ("name", "namespace") if not isinstance(metadata.get(field), str)]
        errors = sorted(custom.iter_errors(dict(obj)), key=lambda e: list(map(str, e.absolute_path)))
        return problems + [f"{where}: {e.json_path}: {e.message}" for e in errors]
    if version not in kv.all_versions():
        return [f"{where}: kubernetes-validate ships no schemas for this version"]
    try:
        validator = _validator(version, api_version, kind)
    except FileNotFoundError:
        return [
            f"{where}: no schema for {kind} in {api_version} (unknown or removed API)"
        ]
    errors = sorted(
        validator.iter_errors(dict(obj)), key=lambda e: list(map(str, e.absolute_path))
    )
    return [f"{where}: {e.json_path}: {e.message}" for e in errors]


def validate_objects(
    objects: Iterable[Mapping[str, Any]], versions: Sequence[str] | None = None
) -> list[str]:
    """Validate every object strictly against each version (default: 1.30 and the newest shipped)."""
    problems = []
    for obj in objects:
        for version in versions or default_versions():
            problems += validate_object(obj, version)
    return problems


def load_directory(directory: Path) -> list[tuple[Path, dict[str, Any]]]:
    loaded = []
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document is not None:
                loaded.append((path, document))
    return loaded


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m tests.schema OUT_DIR", file=sys.stderr)
        return 64
    directory = Path(argv[0])
    documents = load_directory(directory)
    if not documents:
        print(f"{directory}: no YAML files to validate", file=sys.stderr)
        return 1
    problems = [
        f"{path.name}: {p}" for path, obj in documents for p in validate_objects([obj])
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    versions = ", ".join(default_versions())
    print(
        f"{len(documents)} objects checked against Kubernetes {versions}: {len(problems)} problem(s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
