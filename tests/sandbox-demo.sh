#!/bin/bash
# The README's "run it" command: on a machine without systemd as PID 1,
# boots a throw-away systemd container, installs unitgate and a demo app in
# it, walks a real lifecycle as an unprivileged caller (init, start, status,
# reboot, status, stop, delete), printing each command and its output, and
# cleans up. Needs root (systemd-nspawn); the host is not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "sandbox-demo: must run as root (it boots a systemd-nspawn container)" >&2
    exit 1
fi
bash tests/install-deps.sh
cargo build --release --locked --workspace
exec "${CARGO_TARGET_DIR:-target}/release/sandbox-demo"
