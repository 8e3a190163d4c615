"""The Portus entry, rehearsed: the exact rendered script of each Portus container, run by a real shell
as PID 1 of a fresh PID namespace (as in a container), over a stand-in of the image's vendored bundler
and Ruby programs. It reads every secret from its file, sets up what ``portusctl exec`` sets up, runs the
steps in order, and leaves the last one as PID 1, where SIGTERM reaches it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from components.portus.runtime import APP_DIR
from tests.objects import all_containers, env, get, named_prefix, pod_spec, secret_data, secret_files
from tests.rehearsal.processes import SBIN_PATH
from tests.rehearsal.rig import wait_until
from tests.render import Rendered

BUNDLER = """\
#!/bin/sh
# Stand-in of vendor/bundle/ruby/2.5.0/bin/bundler.ruby2.5: `exec CMD...` runs CMD in this process.
[ "$1" = exec ] || { echo "bundler stand-in: expected 'exec', got '$1'" >&2; exit 64; }
shift
echo "$*" >> "$FAKE_STEPS"
exec "$@"
"""

# Stand-in of puma, rake and rails: reports how it was started; puma waits for SIGTERM like Puma 3.10's
# master (which traps it and stops gracefully); `FAKE_FAIL=<program>` makes that program fail.
PROGRAM = """\
#!/usr/bin/ruby
require "json"
name = File.basename($0)
exit 1 if ENV["FAKE_FAIL"] == name
status = File.read("/proc/self/status")
report = {
  "argv" => [name, *ARGV], "cwd" => Dir.pwd,
  "nspid" => status[/^NSpid:\\s+(.*)$/, 1].split.map(&:to_i),
  "env" => ENV.to_h.select { |k, _|
    k.start_with?("PORTUS_", "BOOTSTRAP_") || %w[RAILS_ENV GEM_PATH RUBYLIB].include?(k)
  },
}
File.open(ENV.fetch("FAKE_REPORT"), "a") { |f| f.puts(JSON.dump(report)) }
if name == "puma"
  Signal.trap("TERM") { File.write(ENV.fetch("FAKE_REPORT") + ".term", "graceful stop"); exit 0 }
  sleep
end
"""


class FakeImage:
    """The parts of /srv/Portus the entry touches, under ``root``, and the Ruby programs it runs."""

    def __init__(self, root: Path) -> None:
        self.app = root / "srv" / "Portus"
        vendor = self.app / "vendor" / "bundle" / "ruby" / "2.5.0"
        (vendor / "gems" / "bundler-1.16.4" / "lib").mkdir(parents=True)
        (vendor / "bin").mkdir(parents=True)
        (self.app / ".ruby-version").write_text("2.5.0\n")
        self.vendor = vendor
        self._executable(vendor / "bin" / "bundler.ruby2.5", BUNDLER)
        self.bin = root / "bin"
        self.bin.mkdir()
        for program in ("puma", "rake", "rails"):
            self._executable(self.bin / program, PROGRAM)
        self.secrets = root / "secrets"
        self.secrets.mkdir()
        self.report = root / "report.jsonl"
        self.steps = root / "steps.log"

    @staticmethod
    def _executable(path: Path, text: str) -> None:
        path.write_text(text)
        path.chmod(0o755)

    def start(self, rendered: Rendered, workload: dict[str, Any], extra_env: dict[str, str] | None = None
              ) -> subprocess.Popen[str]:
        """The workload's Portus container as PID 1 of a new PID namespace, its secrets as local files."""
        spec = pod_spec(workload)["containers"][0]
        variables = {k: v for k, v in env(spec).items() if isinstance(v, str)}
        for name, (_, secret, key) in secret_files(workload, spec).items():
            local = self.secrets / name
            local.write_text(secret_data(get(rendered, "Secret", secret))[key])
            variables[f"{name}_FILE"] = str(local)
        shell, flag, script = spec["command"]
        script = script.replace(APP_DIR, str(self.app))
        variables |= {"PATH": f"{self.bin}:{SBIN_PATH}", "FAKE_REPORT": str(self.report),
                      "FAKE_STEPS": str(self.steps), **(extra_env or {})}
        return subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "--", shell, flag, script],
            env=variables, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def reports(self) -> list[dict[str, Any]]:
        if not self.report.exists():
            return []
        return [json.loads(line) for line in self.report.read_text().splitlines()]


@pytest.fixture
def image(tmp_path: Path) -> FakeImage:
    return FakeImage(tmp_path)


def test_puma_is_pid_1_reads_its_secrets_from_files_and_stops_gracefully(rendered: Rendered, image: FakeImage
                                                                         ) -> None:
    web = get(rendered, "Deployment", "portus")
    entry = image.start(rendered, web)
    try:
        assert wait_until(lambda: bool(image.reports()), timeout=20), entry.stderr and entry.stderr.read()
        [report] = image.reports()
        assert report["argv"] == ["puma", "-C", f"{image.app}/config/puma.rb"]
        host_pid, namespace_pid = report["nspid"]
        assert namespace_pid == 1, "the shell and bundler must exec Puma, not wait for it"
        assert report["cwd"] == str(image.app)
        # What portusctl exec adds (openSUSE/portusctl exec.go), for the vendored gems.
        assert report["env"]["RAILS_ENV"] == "production"
        assert report["env"]["GEM_PATH"] == str(image.vendor)
        assert report["env"]["RUBYLIB"] == str(image.vendor / "gems" / "bundler-1.16.4" / "lib")
        portus_secrets = secret_data(get(rendered, "Secret", "portus-secrets"))
        assert report["env"]["PORTUS_PASSWORD"] == portus_secrets["portus-password"]
        assert report["env"]["PORTUS_SECRET_KEY_BASE"] == portus_secrets["secret-key-base"]
        database = secret_data(get(rendered, "Secret", "mariadb-credentials"))
        assert report["env"]["PORTUS_DB_PASSWORD"] == database["password"]
        assert not [name for name in report["env"] if name.endswith("_FILE")], "the _FILE variables stay behind"

        # The kubelet's stop signal goes to the container's PID 1.
        os.kill(host_pid, signal.SIGTERM)
        assert entry.wait(timeout=10) == 0
        assert Path(f"{image.report}.term").read_text() == "graceful stop"
    finally:
        if entry.poll() is None:
            entry.kill()
            entry.wait()


def test_migration_configures_then_ensures_the_portus_user_and_stops_at_the_first_failure(
    rendered: Rendered, image: FakeImage,
) -> None:
    migration = named_prefix(rendered, "Job", "portus-migrate-")
    done = image.start(rendered, migration)
    assert done.wait(timeout=30) == 0, done.stderr and done.stderr.read()
    assert image.steps.read_text().splitlines() == [
        "rake portus:db:configure",
        'rails runner User.create_portus_user! unless User.exists?(username: "portus")',
    ]
    first, last = image.reports()
    assert first["nspid"][-1] != 1 and last["nspid"][-1] == 1

    image.steps.unlink()
    image.report.unlink()
    failed = image.start(rendered, migration, {"FAKE_FAIL": "rake"})
    assert failed.wait(timeout=30) != 0
    assert image.steps.read_text().splitlines() == ["rake portus:db:configure"]
    assert image.reports() == []


def test_bootstrap_reads_the_admin_password_from_its_file(rendered: Rendered, image: FakeImage) -> None:
    bootstrap = named_prefix(rendered, "Job", "portus-bootstrap-")
    done = image.start(rendered, bootstrap)
    assert done.wait(timeout=30) == 0, done.stderr and done.stderr.read()
    [report] = image.reports()
    assert report["argv"][:2] == ["rails", "runner"]
    assert report["env"]["BOOTSTRAP_ADMIN_PASSWORD"] == rendered.outputs["adminPassword"]


def test_a_missing_secret_file_stops_the_entry_before_portus(rendered: Rendered, image: FakeImage) -> None:
    background = get(rendered, "Deployment", "portus-background")
    assert [c["name"] for c in all_containers(background)] == ["ca-bundle", "background"]
    entry = image.start(rendered, background, {"PORTUS_PASSWORD_FILE": str(image.secrets / "missing")})
    assert entry.wait(timeout=30) != 0
    assert "missing" in (entry.stderr.read() if entry.stderr else "")
    assert image.reports() == [], "Portus must not start without its secrets"
