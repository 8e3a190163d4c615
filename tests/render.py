"""Run the Pulumi program under the provider doubles and render what it declares.

CLI: ``python -m tests.render STACK_FILE OUT_DIR`` writes one YAML file per
Kubernetes object (``<kind>-<name>.yaml``, or ``<kind>-<namespace>-<name>.yaml``
when the short name would clash), ``outputs.json`` (stack outputs, secrets in
plain text) and ``outputs.secrets.json`` (the keys of secret outputs). Mapping
keys are written sorted, so two renders of one stack differ only in generated
keys, certificates, passwords and their checksums.
Config reaches the program as under ``pulumi up``: Pulumi.yaml's declared
defaults fill unset keys and declared types are enforced. A ``pulumi.RunError``
from the program (e.g. bad config), a type mismatch, a stack file that is
missing or not a stack file, or an OUT_DIR that is not empty or cannot be
written prints one line to stderr and exits 2 without writing anything; any
other failure exits 1. OUT_DIR must be new or empty: files of an earlier render
would otherwise stay beside the new ones.

Python API: ``render_stack(config)`` runs the program in a fresh interpreter
(Pulumi's runtime state is process-global) and returns a ``Rendered``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import re
import runpy
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from google.protobuf import empty_pb2
from pulumi.runtime import run_in_stack, set_all_config
from pulumi.runtime.mocks import MockEngine, MockSettings
from pulumi.runtime.rpc import is_rpc_secret
from pulumi.runtime.settings import configure

from tests.doubles import (
    CLUSTER_SCOPED_KINDS,
    JSON,
    PlatformMocks,
    PlatformMonitor,
    ResourceRecord,
    kubernetes_gvk,
    normalize_numbers,
    unwrap_secrets,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
EXIT_RUN_ERROR = 2
_CHILD_FLAG = "--child"
_STACK_TYPE = "::pulumi:pulumi:Stack::"


class StackConfigError(Exception):
    """Config rejected: by the program (a ``pulumi.RunError``) or by Pulumi.yaml's declared types."""


class RenderFailure(Exception):
    """The program or the doubles failed in some other way; carries the child's stderr."""


class InputError(Exception):
    """The stack file or the output folder cannot be used; the message is the whole line shown."""


@dataclass
class Rendered:
    objects: list[dict[str, JSON]]
    outputs: dict[str, JSON]
    secret_outputs: list[str]
    resources: list[ResourceRecord]

    def objects_of(self, kind: str) -> list[dict[str, JSON]]:
        return [o for o in self.objects if o["kind"] == kind]

    def resources_of(self, type_token: str) -> list[ResourceRecord]:
        return [r for r in self.resources if r.type == type_token]


# --------------------------------------------------------------------------- config


def _encode(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _type_ok(value: object, declared: object) -> bool:
    # The CLI keeps config as strings, so "443" passes as an integer and 443 as a string.
    if declared == "integer":
        return not isinstance(value, bool) and (
            isinstance(value, int)
            or (isinstance(value, str) and re.fullmatch(r"-?\d+", value) is not None)
        )
    if declared == "boolean":
        return isinstance(value, bool) or value in ("true", "false")
    if declared == "string":
        return not isinstance(value, (dict, list))
    if declared == "array":
        return isinstance(value, list)
    return True


def encode_config(
    config: Mapping[str, object],
    project: str,
    stack: str = "test",
    project_file: Path | None = None,
) -> dict[str, str]:
    """Config as ``pulumi up`` hands it to the program.

    Keys become ``project:key``; values are strings, JSON for lists and objects.
    Like the CLI, defaults declared under ``config:`` in Pulumi.yaml fill unset
    keys, and values must match the declared ``type`` (else StackConfigError).
    """
    values = {
        (key if ":" in key else f"{project}:{key}"): value
        for key, value in config.items()
        if value is not None
    }
    declared: dict[str, object] = {}
    if project_file is not None and project_file.exists():
        project_document, _ = read_yaml(project_file)
        if isinstance(project_document, dict):
            declared = project_document.get("config") or {}
    for key, spec in declared.items():
        full_key = key if ":" in key else f"{project}:{key}"
        # A declaration is either {type, default, ...}, {value: ...} or a bare default.
        if isinstance(spec, dict) and (
            {"type", "default", "description"} & spec.keys()
        ):
            default, type_ = spec.get("default"), spec.get("type")
        elif isinstance(spec, dict) and "value" in spec:
            default, type_ = spec["value"], None
        else:
            default, type_ = spec, None
        if full_key not in values and default is not None:
            values[full_key] = default
        if full_key in values and not _type_ok(values[full_key], type_):
            raise StackConfigError(
                f"Stack '{stack}' with configuration key '{key}' must be of type '{type_}'"
            )
    return {key: _encode(value) for key, value in values.items()}


def _describe(value: object) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def read_yaml(path: Path) -> tuple[object, yaml.Node | None]:
    """A YAML file's content and its node tree (for line numbers); InputError names file and line."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"error: {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"error: {path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return yaml.safe_load(text), yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InputError(f"error: {where}: not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"error: {path}: not valid YAML: {exc}") from None


def _line_of(node: yaml.Node | None, key: str) -> int:
    """Line of ``key``'s value in a top-level mapping node (1 when unknown)."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if key_node.value == key:
                return int(value_node.start_mark.line) + 1
    return 1


def load_stack_file(path: Path) -> tuple[dict[str, object], str, str]:
    """Read ``Pulumi.<stack>.yaml``: (config, project, stack); InputError when it is not a stack file."""
    document, node = read_yaml(path)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise InputError(
            f"error: {path}:1: a stack file is a mapping with a 'config:' key at the top, not {_describe(document)}"
        )
    config = document.get("config") or {}
    if not isinstance(config, dict):
        raise InputError(
            f"error: {path}:{_line_of(node, 'config')}: 'config' must map keys (portus:<key>) to values,"
            f" not {_describe(config)}"
        )
    project_file = path.parent / "Pulumi.yaml"
    project = "portus"
    if project_file.exists():
        declared, _ = read_yaml(project_file)
        if isinstance(declared, dict) and declared.get("name"):
            project = str(declared["name"])
    parts = path.name.split(".")
    stack = (
        parts[1]
        if len(parts) == 3 and parts[0] == "Pulumi" and parts[2] in ("yaml", "yml")
        else "test"
    )
    return config, project, stack


# --------------------------------------------------------------------------- running


@dataclass
class _RunResult:
    outputs: dict[str, JSON]
    secret_outputs: list[str]
    resources: list[ResourceRecord]


def _configure_runtime(
    monitor: PlatformMonitor, project: str, stack: str, program_dir: Path, preview: bool
) -> None:
    # What set_mocks() does, minus its eager root Stack: run_in_stack makes the
    # root Stack itself (as the language host does) and registers its exports.
    engine_log = logging.getLogger("tests.render.engine")
    engine_log.setLevel(logging.WARNING)
    # Older SDKs (the floors in requirements.txt) ask the monitor feature by feature instead.
    deployment_info = getattr(monitor, "GetDeploymentInfo", None)
    features = set(deployment_info(empty_pb2.Empty()).supportedFeatures) if deployment_info else set()
    configure(
        MockSettings(
            monitor=monitor,
            monitor_features=features,
            engine=MockEngine(engine_log),
            project=project,
            stack=stack,
            dry_run=preview,
            organization="organization",
            root_directory=str(program_dir),
            callbacks=None,
        )
    )


def run_program(
    config: Mapping[str, str], project: str, stack: str, program_dir: Path, preview: bool = False
) -> _RunResult:
    """Run ``program_dir/__main__.py`` in this process, as ``pulumi up`` (or ``pulumi preview``) would,
    under the doubles.

    Only call once per process: the Pulumi runtime keeps global state.
    """
    mocks = PlatformMocks(preview=preview)
    monitor = PlatformMonitor(mocks)
    _configure_runtime(monitor, project, stack, program_dir, preview)
    set_all_config(dict(config))
    # The language host runs the program from its directory with that directory importable.
    os.chdir(program_dir)
    sys.path.insert(0, str(program_dir))

    def program() -> None:
        runpy.run_path(str(program_dir / "__main__.py"), run_name="__main__")

    # As the language host does: a failed registration faults many dependent
    # futures nobody awaits; the first failure is re-raised below anyway.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        # run_in_stack waits for every registration and every pending apply, and
        # re-raises the first failure, including errors raised inside apply callbacks.
        loop.run_until_complete(run_in_stack(program))
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                loop.run_until_complete(task)
        loop.close()

    stack_outputs: dict[str, JSON] = next(
        (v for urn, v in monitor.registered_outputs.items() if _STACK_TYPE in urn),
        {},
    )
    return _RunResult(
        outputs=normalize_numbers(unwrap_secrets(stack_outputs)),
        secret_outputs=sorted(k for k, v in stack_outputs.items() if is_rpc_secret(v)),
        resources=list(mocks.records),
    )


def _child_main(request_file: str, result_file: str) -> int:
    request = json.loads(Path(request_file).read_text())
    try:
        result = run_program(
            request["config"],
            request["project"],
            request["stack"],
            Path(request["program_dir"]),
            request["preview"],
        )
    except pulumi.RunError as exc:
        Path(result_file).write_text(json.dumps({"error": str(exc)}))
        return EXIT_RUN_ERROR
    payload = {
        "outputs": result.outputs,
        "secret_outputs": result.secret_outputs,
        "resources": [r.to_json() for r in result.resources],
    }
    Path(result_file).write_text(json.dumps(payload))
    return 0


def render_stack(
    config: Mapping[str, object],
    project: str = "portus",
    stack: str = "test",
    program_dir: Path | None = None,
    preview: bool = False,
) -> Rendered:
    """Run the program for ``config`` (keys ``key`` or ``ns:key``) in a fresh interpreter; with
    ``preview``, as ``pulumi preview`` runs it (see PlatformMocks for what the doubles return then).

    Raises StackConfigError for a RunError from the program, RenderFailure otherwise.
    """
    with tempfile.TemporaryDirectory(prefix="render-") as scratch:
        request_file, result_file = (
            Path(scratch, "request.json"),
            Path(scratch, "result.json"),
        )
        program_dir = (program_dir or REPO_ROOT).resolve()
        encoded = encode_config(config, project, stack, program_dir / "Pulumi.yaml")
        request_file.write_text(
            json.dumps(
                {
                    "config": encoded,
                    "project": project,
                    "stack": stack,
                    "program_dir": str(program_dir),
                    "preview": preview,
                }
            )
        )
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])
            ),
        }
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.render",
                _CHILD_FLAG,
                str(request_file),
                str(result_file),
            ],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode == EXIT_RUN_ERROR:
            raise StackConfigError(json.loads(result_file.read_text())["error"])
        if proc.returncode != 0:
            raise RenderFailure(
                f"program failed (exit {proc.returncode}):\n{proc.stderr}"
            )
        payload = json.loads(result_file.read_text())
    resources = [ResourceRecord.from_json(r) for r in payload["resources"]]
    return Rendered(
        objects=kubernetes_objects(resources),
        outputs=payload["outputs"],
        secret_outputs=payload["secret_outputs"],
        resources=resources,
    )


# --------------------------------------------------------------------------- rendering


def _strip_internal(value: JSON) -> JSON:
    # Keys such as __defaults are Pulumi bookkeeping, never Kubernetes fields.
    if isinstance(value, dict):
        return {
            k: _strip_internal(v) for k, v in value.items() if not k.startswith("__")
        }
    if isinstance(value, list):
        return [_strip_internal(v) for v in value]
    return value


def kubernetes_objects(resources: Sequence[ResourceRecord]) -> list[dict[str, JSON]]:
    """The Kubernetes objects as they would be applied, in registration order."""
    objects = []
    for record in resources:
        gvk = kubernetes_gvk(record.type) if record.custom else None
        if gvk is None:
            continue
        body = _strip_internal(record.inputs)
        api_version = body.pop("apiVersion", gvk[0])
        kind = body.pop("kind", gvk[1])
        body.pop("metadata", None)
        # The provider's checked inputs carry the auto-name and default namespace.
        metadata = _strip_internal(record.outputs.get("metadata") or {})
        objects.append(
            {"apiVersion": api_version, "kind": kind, "metadata": metadata, **body}
        )
    return objects


def object_filenames(objects: Sequence[Mapping[str, JSON]]) -> list[str]:
    short = [f"{o['kind'].lower()}-{o['metadata']['name']}" for o in objects]
    counts = Counter(short)
    names = []
    for obj, base in zip(objects, short, strict=True):
        namespace = obj["metadata"].get("namespace")
        clashes = counts[base] > 1 and namespace and obj["kind"] not in CLUSTER_SCOPED_KINDS
        name = f"{obj['kind'].lower()}-{namespace}-{obj['metadata']['name']}" if clashes else base
        names.append(f"{name}.yaml")
    duplicates = [n for n, c in Counter(names).items() if c > 1]
    if duplicates:
        raise ValueError(f"objects declared twice: {duplicates}")
    return names


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PEM, config files) as literal blocks, so rendered files stay readable."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def check_out_dir(out_dir: Path) -> None:
    """OUT_DIR must be a new or empty folder that can be written; else InputError.

    A folder holding an earlier render is refused rather than emptied: objects the stack no longer
    declares would otherwise stay beside the new ones, and emptying a mistyped path could delete anything.
    """
    if out_dir.exists():
        if not out_dir.is_dir():
            raise InputError(f"error: {out_dir}: not a folder")
        if any(out_dir.iterdir()):
            raise InputError(
                f"error: {out_dir}: not empty; render into a new or empty folder"
                " (files of an earlier render would stay beside the new ones)"
            )
        existing = out_dir
    else:
        existing = next(parent for parent in out_dir.parents if parent.exists())
        if not existing.is_dir():
            raise InputError(f"error: {out_dir}: cannot create it: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"error: {out_dir}: cannot write: permission denied on {existing}")


def write_rendered(
    objects: Sequence[Mapping[str, JSON]],
    outputs: Mapping[str, JSON],
    secret_outputs: Sequence[str],
    out_dir: Path,
) -> None:
    """One YAML file per object (keys sorted, so renders compare line by line) and the outputs.

    InputError when the folder cannot be written; a folder this call created is removed again."""
    created = not out_dir.exists()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for obj, filename in zip(objects, object_filenames(objects), strict=True):
            (out_dir / filename).write_text(
                yaml.dump(dict(obj), Dumper=_BlockDumper, sort_keys=True)
            )
        (out_dir / "outputs.json").write_text(
            json.dumps(outputs, indent=2, sort_keys=True) + "\n"
        )
        (out_dir / "outputs.secrets.json").write_text(
            json.dumps(sorted(secret_outputs), indent=2) + "\n"
        )
    except OSError as exc:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        raise InputError(f"error: {out_dir}: cannot write: {exc.strerror or exc}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str]) -> int:
    if argv[:1] == [_CHILD_FLAG]:
        return _child_main(argv[1], argv[2])
    parser = argparse.ArgumentParser(
        prog="python -m tests.render", description=__doc__.splitlines()[0]
    )
    parser.add_argument("stack_file", type=Path, help="a Pulumi.<stack>.yaml file")
    parser.add_argument("out_dir", type=Path, help="a new or empty folder for the rendered files")
    parser.add_argument(
        "--program-dir", type=Path, default=REPO_ROOT, help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    out_dir = args.out_dir.absolute()
    program_dir = args.program_dir.resolve()
    try:
        config, project, stack = load_stack_file(args.stack_file)
        check_out_dir(out_dir)
        encoded = encode_config(config, project, stack, program_dir / "Pulumi.yaml")
        result = run_program(encoded, project, stack, program_dir)
        write_rendered(
            kubernetes_objects(result.resources),
            result.outputs,
            result.secret_outputs,
            out_dir,
        )
    except (pulumi.RunError, StackConfigError, InputError) as exc:
        print(_first_line(exc), file=sys.stderr)
        return EXIT_RUN_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
