#!/bin/bash
# The one command that runs every check unitgate has, on a fresh machine:
# installs what the tests need, checks formatting and lints, builds the
# release binaries the end-to-end suite installs, and runs the unit tests
# and the end-to-end suite against real systemd containers: on the host's
# OS, then the OS matrix (Debian 13 with sudo, and with sudo-rs).
#
#   sudo tests/run-all.sh
#
# Exits non-zero on any failure. Needs root: the end-to-end suite boots
# systemd-nspawn machines; it fails (never skips) without root.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
# Elapsed seconds of a step, for the README's tier times.
took() { printf '==> took %d s: %s\n' "$((SECONDS - $1))" "$2"; }

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

step "cargo test (unit tests and the end-to-end suite; host OS: Debian 12, systemd 252, sudo)"
began=$SECONDS
cargo test --workspace --locked --no-fail-fast
took "$began" "host tier"

# The OS matrix: the suites that drive systemd and sudo most directly run
# again on Debian 13 (systemd 257; a debootstrap image the test bed builds
# once and caches under /var/tmp/unitgate-images), with sudo, then with
# sudo-rs as /usr/bin/sudo. The binaries built above run unchanged inside.
run_tier() { # OS SUITE...
    os=$1; shift
    args=()
    for suite in "$@"; do args+=(--test "$suite"); done
    began=$SECONDS
    UNITGATE_TESTBED_OS=$os cargo test -p unitgate-tests --locked --no-fail-fast "${args[@]}"
    took "$began" "$os tier"
}

step "the helper, lifecycle and watch suites on Debian 13 (systemd 257, sudo)"
run_tier trixie helper_e2e helper_hostile cli_lifecycle cli_errors cli_robustness \
    cli_hostile_account cli_watch

step "the helper and lifecycle suites on Debian 13 with sudo-rs as /usr/bin/sudo"
run_tier trixie-sudo-rs helper_e2e helper_hostile cli_lifecycle cli_errors

step "fuzz the helper's parsing (short run)"
began=$SECONDS
bash tests/fuzz-smoke.sh
took "$began" "fuzzing"

echo
# The whole command must stay under 30 minutes on a 2-core machine (README).
took 0 "the whole test command"
echo "run-all: all checks passed"
