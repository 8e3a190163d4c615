"""Day-2 operations as the program declares them: rollouts that drop nothing (the Portus entry's command
lines, stop pauses and grace periods), the catalog sync, and the database backup's objects."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pytest

from components import kube
from components.portus import CATALOG_SYNC
from components.portus.runtime import PortusSecret, entry_script
from tests.conftest import MINIMAL_CONFIG, stack_config
from tests.objects import Obj, container, env, get, named_prefix, pod_spec, pod_template
from tests.render import Rendered

# lib/portus/background/sync.rb (2.4.3) accepts exactly these strategies.
PORTUS_SYNC_STRATEGIES = {"update-delete", "update", "on-start", "initial"}


def _steps(workload: Obj) -> list[str]:
    """The commands the entry runs through bundler, in order; the exec'd one marked with ``exec``."""
    command = pod_spec(workload)["containers"][0]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    return re.findall(r'^((?:exec )?)"\$bundler" exec (.+)$', command[2], re.M)


def test_every_portus_container_execs_what_portusctl_would_run(prod: Rendered) -> None:
    assert _steps(get(prod, "Deployment", "portus")) == [("exec ", "puma -C /srv/Portus/config/puma.rb")]
    assert _steps(get(prod, "Deployment", "portus-background")) == [
        ("exec ", "rails runner /srv/Portus/bin/background.rb")
    ]
    # The migration converges after a half-done first run: configure, then the seed's one effect.
    assert _steps(named_prefix(prod, "Job", "portus-migrate-")) == [
        ("", "rake portus:db:configure"),
        ("exec ", "rails runner 'User.create_portus_user! unless User.exists?(username: \"portus\")'"),
    ]
    assert _steps(named_prefix(prod, "Job", "portus-bootstrap-")) == [
        ("exec ", "rails runner /etc/portus/bootstrap/bootstrap.rb")
    ]


def test_the_entry_reads_every_secret_before_anything_runs() -> None:
    script = entry_script(["PORTUS_DB_PASSWORD", "PORTUS_LDAP_AUTHENTICATION_PASSWORD"], [["a"], ["b", "it's"]])
    lines = script.splitlines()
    secret_lines = [i for i, line in enumerate(lines) if line.startswith("portus_secret ")]
    bundler_lines = [i for i, line in enumerate(lines) if '"$bundler" exec' in line]
    assert [lines[i] for i in secret_lines] == [
        "portus_secret PORTUS_DB_PASSWORD", "portus_secret PORTUS_LDAP_AUTHENTICATION_PASSWORD",
    ]
    assert max(secret_lines) < lines.index("cd /srv/Portus") < min(bundler_lines)
    assert lines[-2:] == ['"$bundler" exec a', """exec "$bundler" exec b 'it'"'"'s'"""]
    assert lines[0] == "set -eu"
    with pytest.raises(ValueError):
        PortusSecret("PORTUS_DB_PASSWORD; rm -rf /", "secret", "key")
    with pytest.raises(ValueError):
        entry_script([], [])


def _pre_stop_seconds(spec: Obj) -> int:
    command = spec["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


def _read_timeout(nginx_conf: str, location: str) -> int:
    block = nginx_conf.split(f"location {location} {{", 1)[1].split("}", 1)[0]
    match = re.search(r"proxy_read_timeout (\d+)s;", block)
    assert match, location
    return int(match[1])


def test_grace_periods_cover_the_pause_and_the_longest_request(prod: Rendered) -> None:
    nginx_conf = get(prod, "ConfigMap", "proxy-config")["data"]["nginx.conf"]
    web = get(prod, "Deployment", "portus")
    pause = _pre_stop_seconds(container(web))
    assert 0 < pause <= 10
    # Puma finishes its requests in flight after the pause; the proxy waits no longer for an answer.
    longest = max(_read_timeout(nginx_conf, "/"), _read_timeout(nginx_conf, "= /v2/token"))
    assert pod_spec(web)["terminationGracePeriodSeconds"] > pause + longest
    assert pod_spec(get(prod, "Deployment", "portus-background"))["terminationGracePeriodSeconds"] >= 10

    proxy = get(prod, "Deployment", "proxy")
    assert pod_spec(proxy)["terminationGracePeriodSeconds"] > _pre_stop_seconds(container(proxy, "nginx"))


def test_catalog_sync_maps_to_portus_background_sync_settings(
    render: Callable[[Mapping[str, object]], Rendered], prod: Rendered,
) -> None:
    for value, settings in CATALOG_SYNC.items():
        assert settings["PORTUS_BACKGROUND_SYNC_ENABLED"] in ("true", "false"), value  # cconfig booleans
        if settings["PORTUS_BACKGROUND_SYNC_ENABLED"] == "true":
            assert settings["PORTUS_BACKGROUND_SYNC_STRATEGY"] in PORTUS_SYNC_STRATEGIES
    background = env(container(get(prod, "Deployment", "portus-background")))
    assert (background["PORTUS_BACKGROUND_SYNC_ENABLED"], background["PORTUS_BACKGROUND_SYNC_STRATEGY"]) == (
        "true", "update"
    )
    disabled = render({**MINIMAL_CONFIG, "catalogSync": "disabled"})
    background = env(container(get(disabled, "Deployment", "portus-background")))
    assert background["PORTUS_BACKGROUND_SYNC_ENABLED"] == "false"
    assert "PORTUS_BACKGROUND_SYNC_STRATEGY" not in background


# ------------------------------------------------------------------------------------------ backups


def _options(rendered: Rendered, type_suffix: str, name: str) -> Mapping[str, object]:
    return next(r.options for r in rendered.resources if r.type.endswith(type_suffix) and r.name == name)


def test_backup_cronjob_never_overlaps_and_runs_like_every_job(prod: Rendered) -> None:
    cronjob = get(prod, "CronJob", "mariadb-backup")["spec"]
    assert cronjob["schedule"] == "15 3 * * *" and cronjob["timeZone"] == "Etc/UTC"
    assert cronjob["concurrencyPolicy"] == "Forbid"
    assert 0 < cronjob["startingDeadlineSeconds"] <= 24 * 3600
    job = cronjob["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0 and job["backoffLimit"] >= 0
    pod = pod_spec(get(prod, "CronJob", "mariadb-backup"))
    assert pod["restartPolicy"] == "Never"
    assert container(get(prod, "CronJob", "mariadb-backup"))["command"] == [
        "/bin/bash", "/opt/mariadb-backup/backup"
    ]
    assert env(container(get(prod, "CronJob", "mariadb-backup")))["BACKUP_RETAIN"] == "7"

    restore = get(prod, "CronJob", "mariadb-restore")
    assert restore["spec"]["suspend"] is True
    # Same claim, same identity (and so the same network flow) as the backups.
    assert pod_spec(restore)["volumes"] == pod["volumes"]
    assert pod_template(restore)["metadata"]["labels"]["app.kubernetes.io/name"] == "mariadb-backup"


def test_backup_claim_is_kept_like_the_other_data(prod: Rendered, dev: Rendered) -> None:
    claim = get(prod, "PersistentVolumeClaim", "mariadb-backup")["spec"]
    assert claim["resources"]["requests"]["storage"] == "10Gi"
    assert claim["storageClassName"] == "fast-ssd"  # the stack's storageClass
    for rendered, kept in ((prod, True), (dev, False)):
        options = _options(rendered, ":PersistentVolumeClaim", "database-backup-data")
        assert options["retainOnDelete"] is kept
        assert options["provider"] == _options(rendered, ":PersistentVolumeClaim", "registry-data")["provider"]


def _rules(rendered: Rendered, policy: str, direction: str) -> list[Obj]:
    rules: list[Obj] = get(rendered, "NetworkPolicy", policy)["spec"].get(direction, [])
    return rules


def test_backup_pods_reach_only_the_database(prod: Rendered) -> None:
    assert [(r["to"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"], r["ports"][0]["port"])
            for r in _rules(prod, "allow-backup", "egress")] == [("mariadb", 3306)]
    assert _rules(prod, "allow-backup", "ingress") == []
    sources = [r["from"][0]["podSelector"]["matchLabels"] for r in _rules(prod, "allow-database", "ingress")]
    assert kube.selector_labels("mariadb-backup") in sources


def test_no_backup_objects_when_backups_are_off(render: Callable[[Mapping[str, object]], Rendered]) -> None:
    rendered = render({**stack_config("prod"), "backup": {"enabled": False}})
    assert rendered.objects_of("CronJob") == []
    assert [c["metadata"]["name"] for c in rendered.objects_of("PersistentVolumeClaim")] == ["registry-data"]
    assert "allow-backup" not in {p["metadata"]["name"] for p in rendered.objects_of("NetworkPolicy")}
    sources = [r["from"][0]["podSelector"]["matchLabels"] for r in _rules(rendered, "allow-database", "ingress")]
    assert kube.selector_labels("mariadb-backup") not in sources
