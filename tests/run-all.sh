#!/bin/bash
# The one command that runs every check unitgate has, on a fresh machine:
# installs what the tests need, checks formatting and lints, builds the
# release binaries the end-to-end suite installs, and runs the unit tests
# and the end-to-end suite against real systemd containers and, for what
# needs a kernel with every cgroup v2 controller, in QEMU guests (the VM tier:
# its Debian image is built on first use and cached under /var/tmp).
#
#   sudo tests/run-all.sh
#
# Exits non-zero on any failure. Needs root: the end-to-end suite boots
# systemd-nspawn machines; it fails (never skips) without root.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "run-all: must run as root (the end-to-end suite boots systemd containers)" >&2
    exit 1
fi

step "system packages"
bash tests/install-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo build --release"
cargo build --workspace --release --locked

step "VM tier image (built from Debian packages on first use, then cached)"
cargo run --release --locked --quiet -p unitgate-tests --bin vm-image

step "cargo test (unit tests and the end-to-end suite)"
cargo test --workspace --locked --no-fail-fast

step "fuzz the helper's parsing (short run)"
bash tests/fuzz-smoke.sh

echo
echo "run-all: all checks passed"
