#!/bin/bash
# A short fuzzing run of every parser that takes hostile input: the helper's
# argument and policy parsing (helper/fuzz, target `pipeline`), the
# instance environment file `unitgate launch` reads (ctl/fuzz, target
# `envfile`), and the policy's TOML subset held to the `toml` crate
# (policy/fuzz, target `toml_diff`: a disagreement is a crash). Installs
# cargo-fuzz when missing, then fuzzes each target for FUZZ_SECONDS (default
# 30), starting from its committed seeds (<dir>/seeds/<target>) and with its
# dictionary (<dir>/<target>.dict) where it has them. Any crash fails the
# run. For a longer hunt: FUZZ_SECONDS=3600 tests/fuzz-smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# One target directory for the three fuzz workspaces: what they share
# (libFuzzer itself, the policy crate and the crates below it, built with
# the same sanitizer flags) is built once, not three times (6.5 instead of
# about 8.5 minutes of CPU, 7 Dec 2026).
shared=$PWD/target/fuzz
for target in helper/fuzz:pipeline ctl/fuzz:envfile policy/fuzz:toml_diff; do
    dir=${target%%:*} name=${target#*:}
    rc=0
    # New inputs go to the first corpus directory (corpus/<target>, not
    # committed); the seeds are only read.
    corpora=() flags=()
    if [ -d "$dir/seeds/$name" ]; then
        mkdir -p "$dir/corpus/$name"
        corpora=("corpus/$name" "seeds/$name")
    fi
    if [ -f "$dir/$name.dict" ]; then
        flags=("-dict=$name.dict")
    fi
    # cargo-fuzz passes nightly-only flags (sanitizers); the machine has one
    # stable toolchain, which accepts them with RUSTC_BOOTSTRAP.
    (cd "$dir" && RUSTC_BOOTSTRAP=1 cargo fuzz run --target-dir "$shared" "$name" "${corpora[@]}" -- "${flags[@]}" -max_total_time="${FUZZ_SECONDS:-30}") >"$log" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$log"
        echo "fuzz-smoke: the fuzzer failed on $name (exit $rc); the crashing input is under $dir/artifacts/" >&2
        exit "$rc"
    fi
    printf '%s: ' "$name"
    grep -E '^Done [0-9]+ runs' "$log"
done
