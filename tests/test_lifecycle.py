"""`pulumi up`, `pulumi destroy` and `pulumi up` again with the real engine and provider: the rules
pulumi-kubernetes' own source sets (await logic, server-side apply, Job handling, IDs, render mode),
checked on what the program declares."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.objects import Obj, all_containers, pod_spec
from tests.render import Rendered


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
