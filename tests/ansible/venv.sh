#!/bin/bash
# ansible-core from PyPI in a virtual environment, made once and cached under
# /var/tmp (the version pinned here); prints its directory. Shared by the
# collection's own checks (check.sh) and the three-host test (fleet_ansible),
# which may start it at the same time: the lock makes one wait for the other.
#
#   venv=$(bash tests/ansible/venv.sh)
set -euo pipefail
core='ansible-core==2.19.*'
venv=/var/tmp/unitgate-ansible
exec 9>"$venv.lock"
flock 9
# Made in place (its scripts name its own path); complete once marked so.
if [ ! -e "$venv/complete" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install -q "$core" pytest pytest-xdist pytest-mock >&2
    : > "$venv/complete"
fi
echo "$venv"
