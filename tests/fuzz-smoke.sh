#!/bin/bash
# A short fuzzing run of every parser that takes hostile input: the helper's
# argument and policy parsing (helper/fuzz, target `pipeline`) and the
# instance environment file `unitgate launch` reads (ctl/fuzz, target
# `envfile`). Installs cargo-fuzz when missing, then fuzzes each target for
# FUZZ_SECONDS (default 30). Any crash fails the run. For a longer hunt:
# FUZZ_SECONDS=3600 tests/fuzz-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in helper/fuzz:pipeline ctl/fuzz:envfile; do
    dir=${target%%:*} name=${target#*:}
    rc=0
    # cargo-fuzz passes nightly-only flags (sanitizers); the machine has one
    # stable toolchain, which accepts them with RUSTC_BOOTSTRAP.
    (cd "$dir" && RUSTC_BOOTSTRAP=1 cargo fuzz run "$name" -- -max_total_time="${FUZZ_SECONDS:-30}") >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
        echo "fuzz-smoke: the fuzzer failed on $name (exit $rc); the crashing input is under $dir/artifacts/" >&2
        exit "$rc"
    fi
    printf '%s: ' "$name"
    grep -E '^Done [0-9]+ runs' "$log"
done
