#!/bin/bash
# The one command that runs every check unitgate has, on a fresh machine:
# installs what the tests need, checks formatting and lints, builds the
# release binaries the end-to-end suite installs, and runs the unit tests
# and the end-to-end suite against real systemd containers.
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

# Seconds, no root or container: a broken command line shows up here,
# before the long end-to-end step.
step "cargo test: the unitgate and unitgate-systemctl binaries (assert_cmd)"
cargo test -p unitgate-ctl -p unitgate-helper --locked --test cli

step "cargo test (unit tests and the end-to-end suite)"
cargo test --workspace --locked --no-fail-fast

# The suites whose tests wait for something to happen (boots, stops, the
# watcher, lock and bus waits, uninstalls, start limits, settle windows), again with a CPU
# hog on every core: their waits are conditions with deadlines, and this
# proves it on a machine shared with other work, as CI's is. The suites that
# pin static properties (hostile input, tampered trees, the installer's
# layout, the test bed) are not repeated: load changes nothing they check.
under_load=(cli_lifecycle cli_errors cli_robustness cli_watch cli_json_contract helper_e2e deploy_apps deploy_deb)
step "the end-to-end suites that wait, under load: ${under_load[*]}"
# The hog is this script's own child, ended by the trap however the step
# ends (--timeout is a backstop should the script itself be killed).
stress-ng --cpu 0 --timeout 3600 --quiet &
hog=$!
trap 'kill "$hog" 2>/dev/null || true; wait "$hog" 2>/dev/null || true' EXIT
# --workspace, as above, so that nothing is built again.
cargo test --workspace --locked --no-fail-fast "${under_load[@]/#/--test=}"
kill "$hog"
wait "$hog" 2>/dev/null || true
trap - EXIT

step "fuzz the helper's parsing (short run)"
bash tests/fuzz-smoke.sh

echo
echo "run-all: all checks passed"
