"""Backups of the internal MariaDB: a CronJob that dumps ``portus_production`` to its own claim, and a
restore helper the README's procedure starts from a suspended CronJob.

Both scripts are generated here and shipped in one ConfigMap; everything they need comes from the
environment (host, user, the password as a file, the backup directory), so the rehearsal runs the
exact rendered command against Debian's MariaDB with nothing but paths and the address changed.

pulumi-kubernetes has no await rule for CronJobs (provider/pkg/await/awaiters.go, v4.16 to v4.32: the
awaiters map has ``batch/v1/Job`` but no ``batch/v1/CronJob``, so a CronJob is ready as soon as the API
server accepts it): ``pulumi up`` never waits for a backup to run, and a failing backup shows up in the
cluster (the CronJob's Jobs, the PrometheusRule's alert), not in Pulumi.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components import kube

NAME = "mariadb-backup"
RESTORE_NAME = "mariadb-restore"
COMPONENT = "backup"
RESTORE_COMPONENT = "restore"
BACKUP_DIR = "/backup"
SCRIPTS_DIR = "/opt/mariadb-backup"
PASSWORD_DIR = "/etc/mariadb-backup"
RUNTIME_DIR = "/run/mariadb-backup"
# A dump of Portus's database is small: minutes at most, even on a slow volume.
BACKUP_DEADLINE_SECONDS = 3600
# How long a restore pod waits for the operator (README, "Restoring the database").
RESTORE_HELPER_SECONDS = 4 * 3600
RESOURCES = kube.ResourceSpec("50m", "64Mi", "1", "512Mi")

# Every script reads its settings from the environment and writes the client's option file (with the
# password) to a memory-backed directory that only its own user can read.
_CLIENT_OPTIONS = """\
options="$BACKUP_RUNTIME_DIR/client.cnf"
printf '[client]\\nhost=%s\\nport=%s\\nuser=%s\\npassword=%s\\n' \\
  "$MARIADB_HOST" "$MARIADB_PORT" "$MARIADB_USER" "$(cat "$MARIADB_PASSWORD_FILE")" > "$options"
"""

# mariadb-dump ends a complete dump with this comment line.
_COMPLETE = "^-- Dump completed"

BACKUP_SCRIPT = f"""\
#!/bin/bash
# Dumps $MARIADB_DATABASE to $BACKUP_DIR/<database>-<UTC time>.sql.gz and keeps the newest
# $BACKUP_RETAIN dumps. Any failure exits non-zero and leaves no partial file behind.
set -euo pipefail
umask 077
stamp=$(date -u +%Y%m%dT%H%M%SZ)
final="$BACKUP_DIR/$MARIADB_DATABASE-$stamp.sql.gz"
partial="$BACKUP_DIR/.$MARIADB_DATABASE-$stamp.sql.gz.partial"
options=
finish() {{
  status=$?
  rm -f -- "$partial" ${{options:+"$options"}}
  if [ "$status" -ne 0 ]; then echo "backup: FAILED (exit $status); no backup written" >&2; fi
  exit "$status"
}}
trap finish EXIT
trap 'exit 143' TERM INT
# A run killed outright (SIGKILL, a lost node) cannot clean up after itself: the next one does.
rm -f -- "$BACKUP_DIR"/.*.partial
{_CLIENT_OPTIONS}mariadb-dump --defaults-extra-file="$options" --single-transaction --routines --triggers --events \\
  --hex-blob "$MARIADB_DATABASE" | gzip -6 > "$partial"
gzip -t "$partial"
gzip -dc "$partial" | tail -n 1 | grep -q '{_COMPLETE}' || {{ echo "backup: the dump is incomplete" >&2; exit 1; }}
mv -- "$partial" "$final"
printf '%s\\n' "$BACKUP_DIR/$MARIADB_DATABASE"-*.sql.gz | sort -r | tail -n +"$((BACKUP_RETAIN + 1))" \\
  | while read -r old; do rm -f -- "$old"; echo "backup: removed $old"; done
echo "backup: wrote $final ($(du -h "$final" | cut -f1)); keeping the newest $BACKUP_RETAIN"
"""

RESTORE_SCRIPT = f"""\
#!/bin/bash
# restore FILE: replaces $MARIADB_DATABASE with the dump FILE (a name in $BACKUP_DIR, or a path).
# Checks the dump first and refuses while Portus is connected, so a mistake costs nothing.
set -euo pipefail
umask 077
file=${{1:?usage: restore FILE, one of: $(cd "$BACKUP_DIR" && ls -1 -- *.sql.gz 2>/dev/null | tr '\\n' ' ')}}
case "$file" in */*) ;; *) file="$BACKUP_DIR/$file" ;; esac
options=
trap 'rm -f -- ${{options:+"$options"}}' EXIT
gzip -t "$file"
gzip -dc "$file" | tail -n 1 | grep -q '{_COMPLETE}' || {{ echo "restore: $file is not a complete dump" >&2; exit 1; }}
{_CLIENT_OPTIONS}sessions=$(mariadb --defaults-extra-file="$options" -N -e \\
  "SELECT COUNT(*) FROM information_schema.PROCESSLIST
   WHERE USER = SUBSTRING_INDEX(CURRENT_USER(), '@', 1) AND ID <> CONNECTION_ID()")
if [ "$sessions" -ne 0 ]; then
  echo "restore: $sessions other connection(s) of $MARIADB_USER are open;" \
    "scale the portus and portus-background Deployments to 0 first" >&2
  exit 1
fi
mariadb --defaults-extra-file="$options" -e "DROP DATABASE IF EXISTS \\`$MARIADB_DATABASE\\`;
  CREATE DATABASE \\`$MARIADB_DATABASE\\` CHARACTER SET utf8 COLLATE utf8_unicode_ci;"
gzip -dc "$file" | mariadb --defaults-extra-file="$options" "$MARIADB_DATABASE"
echo "restore: $MARIADB_DATABASE restored from $file"
"""


@dataclass(frozen=True)
class BackupConfig:
    """``portus:backup``."""

    enabled: bool
    schedule: str = "15 3 * * *"
    retain: int = 7
    storage_size: str = "10Gi"
    storage_class: str | None = None


@dataclass
class BackupArgs:
    namespace: pulumi.Input[str]
    config: BackupConfig
    image: str
    """The MariaDB image: its client matches the server."""
    run_as: kube.RunAs
    host: str
    port: int
    database: str
    user: str
    credentials_secret: pulumi.Input[str]
    password_key: str
    kept: kube.KeptData


@dataclass
class _PodParts:
    """What backup and restore pods share: identity, the claim, the scripts, the password."""

    account: k8s.core.v1.ServiceAccount
    claim: pulumi.Input[str]
    scripts: pulumi.Input[str]
    version: str


def _container(args: BackupArgs, component: str, command: list[str]) -> k8s.core.v1.ContainerArgs:
    """Every setting the scripts read comes from here: the rehearsal changes only addresses and paths."""
    return k8s.core.v1.ContainerArgs(
        name=component,
        image=args.image,
        command=command,
        env=kube.env({
            "PATH": f"{SCRIPTS_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "MARIADB_HOST": args.host,
            "MARIADB_PORT": str(args.port),
            "MARIADB_DATABASE": args.database,
            "MARIADB_USER": args.user,
            "MARIADB_PASSWORD_FILE": f"{PASSWORD_DIR}/{args.password_key}",
            "BACKUP_DIR": BACKUP_DIR,
            "BACKUP_RETAIN": str(args.config.retain),
            "BACKUP_RUNTIME_DIR": RUNTIME_DIR,
        }),
        volume_mounts=[
            k8s.core.v1.VolumeMountArgs(name="data", mount_path=BACKUP_DIR),
            k8s.core.v1.VolumeMountArgs(name="scripts", mount_path=SCRIPTS_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="password", mount_path=PASSWORD_DIR, read_only=True),
            k8s.core.v1.VolumeMountArgs(name="runtime", mount_path=RUNTIME_DIR),
        ],
        resources=kube.resources(RESOURCES),
        security_context=kube.restricted_container_security(),
    )


def _job_template(args: BackupArgs, parts: _PodParts, component: str, command: list[str], deadline: int,
                  grace: int | None = None) -> k8s.batch.v1.JobTemplateSpecArgs:
    pod = kube.pod_spec(
        parts.account, args.run_as, [_container(args, component, command)],
        [
            k8s.core.v1.VolumeArgs(
                name="data",
                persistent_volume_claim=k8s.core.v1.PersistentVolumeClaimVolumeSourceArgs(claim_name=parts.claim),
            ),
            k8s.core.v1.VolumeArgs(name="scripts", config_map=k8s.core.v1.ConfigMapVolumeSourceArgs(
                name=parts.scripts, default_mode=0o555,
            )),
            kube.secret_volume("password", args.credentials_secret,
                               [k8s.core.v1.KeyToPathArgs(key=args.password_key, path=args.password_key)]),
            kube.empty_dir("runtime", "1Mi", medium="Memory"),
        ],
        termination_grace_period_seconds=grace,
    )
    # Backup and restore pods share the name label: one identity, one network flow.
    labels = kube.labels(NAME, component, parts.version)
    return k8s.batch.v1.JobTemplateSpecArgs(
        metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels),
        spec=kube.job_spec(k8s.meta.v1.ObjectMetaArgs(labels=labels), pod, backoff_limit=1, deadline_seconds=deadline),
    )


class DatabaseBackup(pulumi.ComponentResource):
    def __init__(self, name: str, args: BackupArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("portus:database:DatabaseBackup", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        version = kube.image_version(args.image)
        claim = args.kept.claim(
            f"{name}-data", NAME, args.namespace, COMPONENT, args.config.storage_size, args.config.storage_class, self,
        )
        scripts = k8s.core.v1.ConfigMap(
            f"{name}-scripts",
            metadata=kube.metadata(f"{NAME}-scripts", args.namespace, COMPONENT),
            data={"backup": BACKUP_SCRIPT, "restore": RESTORE_SCRIPT},
            opts=child,
        )
        parts = _PodParts(
            account=kube.service_account(f"{name}-sa", NAME, args.namespace, COMPONENT, child),
            claim=claim.metadata.name,
            scripts=scripts.metadata.name,
            version=version,
        )
        k8s.batch.v1.CronJob(
            name,
            metadata=kube.metadata(NAME, args.namespace, COMPONENT, version),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=args.config.schedule,
                time_zone="Etc/UTC",
                # A slow dump must never overlap the next one on the same claim.
                concurrency_policy="Forbid",
                # A run missed by more than an hour (controller down, claim busy) waits for the next slot.
                starting_deadline_seconds=3600,
                job_template=_job_template(args, parts, COMPONENT, ["/bin/bash", f"{SCRIPTS_DIR}/backup"],
                                           BACKUP_DEADLINE_SECONDS),
                successful_jobs_history_limit=3,
                failed_jobs_history_limit=3,
            ),
            opts=child,
        )
        # Never scheduled: `kubectl create job --from=cronjob/mariadb-restore` starts a pod beside the
        # backups (same claim, identity and network access) in which the operator runs `restore FILE`.
        k8s.batch.v1.CronJob(
            f"{name}-restore",
            metadata=kube.metadata(RESTORE_NAME, args.namespace, RESTORE_COMPONENT, version),
            spec=k8s.batch.v1.CronJobSpecArgs(
                schedule=args.config.schedule,
                suspend=True,
                concurrency_policy="Forbid",
                job_template=_job_template(args, parts, RESTORE_COMPONENT, ["sleep", str(RESTORE_HELPER_SECONDS)],
                                           RESTORE_HELPER_SECONDS + 60, grace=5),
                successful_jobs_history_limit=3,
                failed_jobs_history_limit=3,
            ),
            opts=child,
        )
        self.register_outputs({"claim": claim.metadata.name})
