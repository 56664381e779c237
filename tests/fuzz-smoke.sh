#!/bin/bash
# A short fuzzing run of the helper's argument and policy parsing
# (helper/fuzz, target `pipeline`): installs cargo-fuzz when missing, then
# fuzzes for FUZZ_SECONDS (default 30). Any crash fails the run. For a
# longer hunt: FUZZ_SECONDS=3600 tests/fuzz-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/../helper/fuzz"
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz passes nightly-only flags (sanitizers); the machine has one
# stable toolchain, which accepts them with RUSTC_BOOTSTRAP.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
RUSTC_BOOTSTRAP=1 cargo fuzz run pipeline -- -max_total_time="${FUZZ_SECONDS:-30}" >"$log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    tail -n 60 "$log"
    echo "fuzz-smoke: the fuzzer failed (exit $rc); the crashing input is under helper/fuzz/artifacts/" >&2
    exit "$rc"
fi
grep -E '^Done [0-9]+ runs' "$log"
