#!/usr/bin/env bash
# The whole check, with its own set-up: the Debian packages in .ci/debian-packages (installed when
# missing, as root or through sudo), a virtualenv in .ci/venv with requirements-dev.txt, then
# `ruff check .`, `mypy .` and `python -m pytest` (arguments go to pytest). Exits non-zero on the
# first failure. PYTHON picks the interpreter for the virtualenv (default python3, 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")"

packages=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' .ci/debian-packages)
as_root=()

install_packages() {
    if ! command -v dpkg-query >/dev/null; then
        echo "test.sh: not a Debian or Ubuntu system; install the equivalents of:" $packages >&2
        return
    fi
    local missing=() alternatives alternative installed
    # A line `a|b` is satisfied by either package (Docker's containerd.io stands in for containerd);
    # the first is installed when neither is.
    for alternatives in $packages; do
        installed=no
        for alternative in ${alternatives//|/ }; do
            dpkg-query -W -f='${Status}' "$alternative" 2>/dev/null | grep -q "ok installed" && installed=yes
        done
        [ "$installed" = yes ] || missing+=("${alternatives%%|*}")
    done
    [ ${#missing[@]} -eq 0 ] && return
    if [ "$(id -u)" -ne 0 ]; then
        if ! sudo -n true 2>/dev/null; then
            echo "test.sh: missing Debian packages: ${missing[*]}" >&2
            echo "test.sh: install them with: sudo apt-get install --no-install-recommends ${missing[*]}" >&2
            exit 1
        fi
        as_root=(sudo)
    fi
    echo "test.sh: installing ${missing[*]}" >&2
    # Packaged services must not start (they would hold ports): a policy-rc.d that says no, for this
    # install only.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        "${as_root[@]}" sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
        trap '"${as_root[@]}" rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

create_venv() {
    local python=${PYTHON:-python3}
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        echo "test.sh: $python is not Python 3.11 or newer; set PYTHON to one that is" >&2
        exit 1
    fi
    [ -x .ci/venv/bin/python ] || "$python" -m venv .ci/venv
    # Reinstall only when the requirements changed since the last install.
    local stamp
    stamp=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
    if [ "$(cat .ci/venv/.requirements 2>/dev/null)" != "$stamp" ]; then
        .ci/venv/bin/python -m pip install -q --upgrade pip
        .ci/venv/bin/python -m pip install -q -r requirements-dev.txt
        echo "$stamp" > .ci/venv/.requirements
    fi
}

install_packages
create_venv
echo "test.sh: ruff check ." >&2
.ci/venv/bin/ruff check .
echo "test.sh: mypy ." >&2
.ci/venv/bin/mypy .
echo "test.sh: python -m pytest $*" >&2
.ci/venv/bin/python -m pytest "$@"
