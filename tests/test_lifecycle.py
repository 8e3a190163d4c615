"""`pulumi up`, `pulumi destroy` and `pulumi up` again with the real engine and provider: the rules
pulumi-kubernetes' own source sets (await logic, server-side apply, Job handling, IDs, render mode),
checked on what the program declares."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pulumi.runtime.rpc import UNKNOWN

from tests.conftest import MINIMAL_CONFIG
from tests.doubles import ResourceRecord
from tests.objects import Obj, all_containers, get, pod_spec, secret_data
from tests.render import Rendered, render_stack
from tests.schema import validate_objects

# Shorter strings (a namespace, "none") turn up inside long random values by chance.
MIN_SECRET = 16


@pytest.fixture(params=["dev", "prod", "load_balancer"])
def stack(request: pytest.FixtureRequest) -> Rendered:
    rendered: Rendered = request.getfixturevalue(request.param)
    return rendered


def jobs(rendered: Rendered) -> Iterator[Obj]:
    found = rendered.objects_of("Job")
    assert len(found) == 2
    yield from found


def _timeouts(rendered: Rendered, job: Obj) -> dict[str, str]:
    record = next(r for r in rendered.resources
                  if r.type == "kubernetes:batch/v1:Job" and r.outputs["metadata"]["name"] == job["metadata"]["name"])
    return record.options["customTimeouts"]


def test_a_failed_job_runs_again_on_the_next_up_and_keeps_its_logs(stack: Rendered) -> None:
    for job in jobs(stack):
        name = job["metadata"]["name"]
        # The provider replaces a Job that is not Complete at diff time (Jobs only).
        assert job["metadata"]["annotations"]["pulumi.com/replaceUnready"] == "true", name
        # Failed attempts stay as Failed pods with their logs; OnFailure lets Kubernetes delete them.
        assert pod_spec(job)["restartPolicy"] == "Never", name
        for container in all_containers(job):
            assert container["terminationMessagePolicy"] == "FallbackToLogsOnError", (name, container["name"])


def test_kubernetes_ends_a_job_before_pulumi_stops_waiting_for_it(stack: Rendered) -> None:
    for job in jobs(stack):
        timeouts = _timeouts(stack, job)
        waited = min(int(timeouts[kind].removesuffix("m")) * 60 for kind in ("create", "update"))
        assert 0 < job["spec"]["activeDeadlineSeconds"] < waited, job["metadata"]["name"]


def _strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _secret_values(rendered: Rendered) -> set[str]:
    values = {text for r in rendered.resources for key in r.secret_outputs for text in _strings(r.outputs[key])}
    values |= {text for secret in rendered.objects_of("Secret") for text in secret_data(secret).values()}
    return {value for value in values if len(value) >= MIN_SECRET}


def _readings(resource_id: str) -> set[str]:
    """An ID as it reads, and, if it decodes as base64, base64url or hex, its bytes as text and as hex."""
    readings = {resource_id}
    decoders = (
        lambda text: base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)),
        lambda text: base64.b64decode(text + "=" * (-len(text) % 4), validate=True),
        bytes.fromhex,
    )
    for decode in decoders:
        try:
            raw = decode(resource_id)
        except (ValueError, binascii.Error):
            continue
        readings |= {raw.hex(), raw.decode("latin-1")}
    return {reading for reading in readings if len(reading) >= MIN_SECRET}


def test_no_resource_id_carries_secret_material(stack: Rendered) -> None:
    # IDs are never encrypted in state: `pulumi stack export`, `pulumi stack --show-ids`.
    secrets = _secret_values(stack)
    assert len(secrets) >= 8
    for record in stack.resources:
        for reading in _readings(record.id or ""):
            for secret in secrets:
                assert reading not in secret and secret not in reading, f"{record.type} {record.name}: ID {record.id}"


@pytest.fixture(scope="module")
def load_balancer_preview() -> Rendered:
    return render_stack({**MINIMAL_CONFIG, "exposure": "loadBalancer"}, preview=True)


def test_a_preview_without_the_proxy_address_keeps_it_unknown(load_balancer_preview: Rendered) -> None:
    # An empty address would differ from the live pods' and replace both (immutable) Jobs in the diff.
    for kind in ("Job", "Deployment"):
        for workload in load_balancer_preview.objects_of(kind):
            if workload["metadata"]["name"].startswith("portus"):
                (alias,) = pod_spec(workload)["hostAliases"]
                assert alias.get("ip") == UNKNOWN, workload["metadata"]["name"]


KEPT = ("kubernetes:core/v1:Namespace", "kubernetes:core/v1:PersistentVolumeClaim", "kubernetes:apps/v1:StatefulSet")
KUBECONFIG = "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n"


def _flag(value: object) -> bool:
    # The SDK sends a provider's boolean settings as JSON text.
    return value in (True, "true")


def _kept_data_provider(rendered: Rendered) -> ResourceRecord:
    return next(r for r in rendered.resources if r.type == "pulumi:providers:kubernetes" and r.name == "kept-data")


def _kept(rendered: Rendered) -> list[ResourceRecord]:
    records = [r for r in rendered.resources if r.type in KEPT]
    assert {r.type for r in records} == set(KEPT)
    return records


@pytest.fixture(scope="module")
def adopting() -> Rendered:
    return render_stack({
        **MINIMAL_CONFIG, "adoptExisting": True, "keepDataOnDestroy": False, "kubernetes:kubeconfig": KUBECONFIG,
    })


def test_adoption_is_off_unless_the_stack_turns_it_on(dev: Rendered, prod: Rendered, adopting: Rendered) -> None:
    # Without upsert, creating an object that exists fails with AlreadyExists instead of taking it over.
    for rendered in (dev, prod):
        assert _flag(_kept_data_provider(rendered).inputs["upsertExistingObjects"]) is False
    assert _flag(_kept_data_provider(adopting).inputs["upsertExistingObjects"]) is True
    for rendered in (dev, prod, adopting):
        provider = _kept_data_provider(rendered).inputs
        # A new stack's field manager takes over what an earlier stack applied; upsert needs server-side apply.
        assert _flag(provider["enablePatchForce"]) and _flag(provider["enableServerSideApply"])


def test_destroy_never_deletes_what_the_stack_may_have_adopted(adopting: Rendered) -> None:
    for record in _kept(adopting):
        assert record.options["retainOnDelete"] is True, record.name
    policy = get(adopting, "StatefulSet", "mariadb")["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy["whenDeleted"] == "Retain"


def test_a_throwaway_stack_that_adopted_nothing_deletes_everything(dev: Rendered) -> None:
    for record in _kept(dev):
        assert record.options["retainOnDelete"] is False, record.name


def test_kept_data_survives_destroy_and_nothing_keeps_running(prod: Rendered) -> None:
    retained = {r.type: r.options["retainOnDelete"] for r in _kept(prod)}
    assert retained == {
        "kubernetes:core/v1:Namespace": True, "kubernetes:core/v1:PersistentVolumeClaim": True,
        "kubernetes:apps/v1:StatefulSet": False,
    }
    policy = get(prod, "StatefulSet", "mariadb")["spec"]["persistentVolumeClaimRetentionPolicy"]
    assert policy["whenDeleted"] == "Retain"


def test_an_adopted_bound_claim_is_not_awaited_for_pending(stack: Rendered) -> None:
    # The registry's claim is proven by the registry (the Deployment await needs every claim its pods
    # mount Bound); the backup claim by the backup CronJob's first run, which Pulumi never awaits.
    registry = pod_spec(get(stack, "Deployment", "registry"))["volumes"]
    backup = get(stack, "CronJob", "mariadb-backup")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
    mounted = {v["persistentVolumeClaim"]["claimName"] for v in [*registry, *backup] if "persistentVolumeClaim" in v}
    for claim in stack.objects_of("PersistentVolumeClaim"):
        assert claim["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
        assert claim["metadata"]["name"] in mounted


def test_the_kubeconfig_is_a_secret_in_state(adopting: Rendered) -> None:
    provider = _kept_data_provider(adopting)
    assert provider.inputs["kubeconfig"] == KUBECONFIG
    assert "kubeconfig" in provider.secret_inputs


@pytest.fixture(scope="module")
def rendering(tmp_path_factory: pytest.TempPathFactory) -> tuple[Rendered, Path]:
    folder = tmp_path_factory.mktemp("gitops") / "manifests"
    return render_stack({**MINIMAL_CONFIG, "renderYamlTo": str(folder)}), folder


def test_render_mode_writes_every_object_and_deploys_none(rendering: tuple[Rendered, Path]) -> None:
    rendered, folder = rendering
    providers = [r for r in rendered.resources if r.type == "pulumi:providers:kubernetes"]
    assert {p.name for p in providers} == {"render", "kept-data"}
    for provider in providers:
        assert provider.inputs["renderYamlToDirectory"] == str(folder)
        assert _flag(provider.inputs["alwaysRender"])
        assert not provider.inputs.get("kubeconfig"), "a kubeconfig next to a render folder fails CheckConfig"
    refs = tuple(f"{p.options['urn']}::{p.id}" for p in providers)
    for record in rendered.resources:
        if record.type.startswith("kubernetes:"):
            assert record.options["provider"] in refs, record.name

    files = {path.name: yaml.safe_load(path.read_text()) for path in (folder / "1-manifest").glob("*.yaml")}
    assert len(files) == len(rendered.objects)
    for obj in rendered.objects:
        meta = obj["metadata"]
        name = f"{obj['apiVersion'].replace('/', '_')}-{obj['kind'].lower()}-{meta.get('namespace', 'default')}"
        assert files[f"{name}-{meta['name']}.yaml"]["spec" if "spec" in obj else "metadata"] == obj.get(
            "spec", meta
        )
    assert validate_objects(list(files.values())) == []


def test_render_mode_writes_secrets_in_plain_text(rendering: tuple[Rendered, Path]) -> None:
    rendered, folder = rendering
    (secrets,) = (folder / "1-manifest").glob("v1-secret-portus-portus-secrets.yaml")
    assert rendered.outputs["adminPassword"] in secrets.read_text()


def test_render_mode_leaves_the_public_names_to_the_cluster_dns(rendering: tuple[Rendered, Path]) -> None:
    # A rendered Service has no cluster IP; an alias to an empty or made-up address would be wrong.
    rendered, _folder = rendering
    for workload in [*rendered.objects_of("Deployment"), *rendered.objects_of("Job")]:
        assert "hostAliases" not in pod_spec(workload), workload["metadata"]["name"]
    services = rendered.resources_of("kubernetes:core/v1:Service")
    assert {s.outputs["spec"].get("clusterIP") for s in services} == {None, "None"}  # "None": headless


def test_without_a_render_folder_nothing_renders(prod: Rendered) -> None:
    providers = [r for r in prod.resources if r.type == "pulumi:providers:kubernetes"]
    assert [p.name for p in providers] == ["kept-data"]
    assert "renderYamlToDirectory" not in providers[0].inputs


def test_an_ambient_kubeconfig_stays_out_of_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # Unset, the provider loads $KUBECONFIG at run time like the default provider; the SDK would copy it.
    monkeypatch.setenv("KUBECONFIG", "/home/ops/.kube/prod-cluster")
    provider = _kept_data_provider(render_stack(MINIMAL_CONFIG))
    assert provider.inputs["kubeconfig"] == ""
