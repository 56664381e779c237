#!/bin/bash
# The one command that runs every check unitgate has, on a fresh machine:
# installs what the tests need, checks formatting and lints, builds the
# release binaries the end-to-end suite installs, and runs the unit tests
# and the end-to-end suite against real systemd containers — on the host's
# OS, then the OS matrix (Debian 13 with sudo, and with sudo-rs) — and, for
# what needs a kernel with every cgroup v2 controller, in QEMU guests (the
# VM tier, in the background). Images are built on first use and cached
# under /var/tmp.
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
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "cargo build --release"
cargo build --workspace --release --locked

# Jobs in the background (started below): each job's output goes to a file
# of its own, shown when the job has ended; each runs in a process group of
# its own, so a failed run ends it whole.
declare -A bg_pid bg_log
background() { # NAME COMMAND...
    local name=$1
    shift
    bg_log[$name]=$(mktemp)
    set -m
    (
        set +e
        began=$SECONDS
        "$@"
        rc=$?
        took "$began" "$name"
        exit "$rc"
    ) >"${bg_log[$name]}" 2>&1 &
    set +m
    bg_pid[$name]=$!
}
finish() { # NAME: waits for the job, shows its output, fails if it failed
    local rc=0
    wait "${bg_pid[$1]}" || rc=$?
    cat "${bg_log[$1]}"
    rm -f "${bg_log[$1]}"
    unset "bg_pid[$1]"
    if [ "$rc" != 0 ]; then
        echo "run-all: $1 failed (exit $rc)" >&2
        exit "$rc"
    fi
}
end_background() {
    for pid in "${bg_pid[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
}
trap end_background EXIT

# The OS matrix's Debian 13 trees, built now on a machine without the
# cache (downloads and dpkg, under two minutes), beside the steps below
# instead of inside the first test that boots Debian 13; a test that needs
# a tree before then waits for the build's lock.
background "Debian 13 trees" target/release/os-image

# Seconds, no root or container: a broken command line shows up here,
# before the long end-to-end step.
step "cargo test: the unitgate and unitgate-systemctl binaries (assert_cmd)"
cargo test -p unitgate-ctl -p unitgate-helper --locked --test cli

# Two tiers run in the background beside the container tiers below, which
# mostly wait on systemd: the VM tier (tests/src/vm.rs: QEMU with software
# emulation, one core busy for minutes; its suites need the vm-tier feature,
# so the workspace run does not run them twice) and the fuzzing (three
# sanitizer-instrumented targets to build, then 30 s each).

vm_suites=(vm_testbed vm_runner_pool)
vm_tier() {
    cargo run --release --locked --quiet -p unitgate-tests --bin vm-image &&
        cargo test -p unitgate-tests --features vm-tier --locked --no-fail-fast "${vm_suites[@]/#/--test=}"
}
step "in the background: the VM tier (its image, built from Debian packages on first use, then cached; ${vm_suites[*]}) and the fuzzing"
# Built here, so the job and the next step never wait on each other's build
# lock.
cargo test -p unitgate-tests --features vm-tier --locked --no-run "${vm_suites[@]/#/--test=}"
background "VM tier" vm_tier
# The fuzzing and the Ansible job below run niced: they have until the
# container tiers end, and those go first (with both at the same priority as
# the tiers, the whole command took 1806 s of its 1800, 7 Dec 2026). The VM
# tier keeps its priority: its checks have deadlines on an emulated CPU.
background "fuzzing" nice -n 10 bash tests/fuzz-smoke.sh
# The Ansible collection: its unit and sanity tests (ansible-core from
# PyPI; mostly downloads, the first time), then the fleet test (three
# machines on a link of their own, driven over SSH; built here, as above).
fleet_suites=(fleet_ansible)
cargo test -p unitgate-tests --locked --no-run "${fleet_suites[@]/#/--test=}"
ansible_tier() { # niced, as the fuzzing above
    nice -n 10 bash tests/ansible/check.sh &&
        nice -n 10 cargo test -p unitgate-tests --locked --no-fail-fast "${fleet_suites[@]/#/--test=}"
}
background "ansible collection" ansible_tier

# The suites whose tests wait for something to happen (boots, stops, the
# watcher, lock and bus waits, uninstalls, start limits, settle windows) run
# on the host OS once, at the end, with a CPU hog on every core: their waits
# are conditions with deadlines, and that proves it on a machine shared with
# other work, as CI's is (a run without the hog as well cost 8 minutes of
# the 30 the whole command may take). The suites that pin static properties
# (hostile input, tampered trees, the installer's layout, the test bed) run
# here: load changes nothing they check.
under_load=(cli_lifecycle cli_errors cli_robustness cli_watch cli_json_contract helper_e2e deploy_apps deploy_drdr deploy_orchestrator deploy_deb task_run cli_limits operators)
# Every crate's integration tests but those (and the VM tier's and the
# fleet's). Always
# --workspace: one feature set, so nothing is built twice.
host_suites=()
for f in */tests/*.rs; do
    suite=$(basename "$f" .rs)
    case " ${under_load[*]} ${vm_suites[*]} ${fleet_suites[*]} ${host_suites[*]} " in *" $suite "*) continue ;; esac
    host_suites+=("$suite")
done

step "cargo test (unit tests and the suites that do not wait; host OS: Debian 12, systemd 252, sudo): ${host_suites[*]}"
began=$SECONDS
cargo test --workspace --locked --no-fail-fast --lib --bins "${host_suites[@]/#/--test=}"
cargo test --workspace --locked --no-fail-fast --doc
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
    UNITGATE_TESTBED_OS=$os cargo test --workspace --locked --no-fail-fast "${args[@]}"
    took "$began" "$os tier"
}

step "the Debian 13 trees (built in the background)"
finish "Debian 13 trees"

step "the helper, lifecycle and watch suites on Debian 13 (systemd 257, sudo)"
run_tier trixie helper_e2e helper_hostile helper_deferred_reload cli_lifecycle cli_errors \
    cli_robustness cli_hostile_account cli_watch task_run cli_limits

step "the helper and lifecycle suites on Debian 13 with sudo-rs as /usr/bin/sudo"
run_tier trixie-sudo-rs helper_e2e helper_hostile cli_lifecycle cli_errors task_run operators

step "the VM tier (it ran in the background)"
finish "VM tier"

step "the fuzzing of every parser of hostile input (it ran in the background)"
finish "fuzzing"

step "the Ansible collection's unit and sanity tests, and the fleet test (they ran in the background)"
finish "ansible collection"

step "the end-to-end suites that wait, on the host OS, under load: ${under_load[*]}"
began=$SECONDS
# The hog is this script's own child, ended by the trap however the step
# ends (--timeout is a backstop should the script itself be killed).
stress-ng --cpu 0 --timeout 3600 --quiet &
hog=$!
trap 'kill "$hog" 2>/dev/null || true; wait "$hog" 2>/dev/null || true; end_background' EXIT
# --workspace, as above, so that nothing is built again.
cargo test --workspace --locked --no-fail-fast "${under_load[@]/#/--test=}"
kill "$hog"
wait "$hog" 2>/dev/null || true
trap - EXIT
took "$began" "the suites that wait, under load"

echo
# The whole command must stay under 30 minutes on a 2-core machine (README).
took 0 "the whole test command"
echo "run-all: all checks passed"
