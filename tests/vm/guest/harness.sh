#!/bin/sh
# The VM tier's harness, run as root by the image's unitgate-vm-job.service
# once the guest is up. The host (tests/src/vm.rs) put it in the job share
# with the checks: /mnt/job/checks/NNN/{name,script,deadline,kind[,group]},
# run here in order. A step runs alone unless it has a `group`: consecutive
# steps of one group run at the same time (checks that cannot disturb each
# other's measurement, so their fixed costs overlap), and the next step
# starts once all of them ended. Each step's stdout, stderr, exit code and
# run time land in /mnt/job/results/NNN/; `code` is written last, so its
# presence says the step finished. A failed `setup` step means the checks
# after it cannot mean anything: they are recorded as not run, with the
# reason.
# The share is 9p without a cache, so every write is on the host when the
# call returns; results/done says the harness got to the end.
set -u
job=/mnt/job
results=$job/results

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# run_step DIR OUT: one step, under its own deadline.
run_step() {
    dir=$1
    out=$2
    name=$(cat "$dir/name")
    deadline=$(cat "$dir/deadline")
    kind=$(cat "$dir/kind")
    began=$(uptime_s)
    echo "harness: $(basename "$dir") $name ($kind, deadline ${deadline}s)"
    timeout --kill-after=5 "$deadline" /bin/sh -c '. /mnt/job/prelude.sh; . "$1"' check "$dir/script" \
        > "$out/stdout" 2> "$out/stderr" < /dev/null
    code=$?
    ended=$(uptime_s)
    seconds=$(echo "$began $ended" | awk '{ printf "%.2f", $2 - $1 }')
    if [ "$code" = 124 ] || [ "$code" = 137 ]; then
        if echo "$seconds $deadline" | awk '{ exit !($1 >= $2) }'; then
            echo "$deadline" > "$out/deadline-passed"
        fi
    fi
    echo "$seconds" > "$out/seconds"
    echo "$code" > "$out/code"
    echo "harness: $(basename "$dir") $name: exit $code in ${seconds}s"
    [ "$kind" != setup ] || [ "$code" = 0 ]
}

uptime_s > "$results/checks-started"
echo "harness: checks start at $(cat "$results/checks-started") s of guest uptime"
failed_setup=
running_group=
for dir in "$job"/checks/*/; do
    n=$(basename "$dir")
    out=$results/$n
    mkdir -p "$out"
    group=
    [ ! -e "$dir/group" ] || group=$(cat "$dir/group")
    if [ -n "$running_group" ] && [ "$group" != "$running_group" ]; then
        wait
        running_group=
    fi
    if [ -n "$failed_setup" ]; then
        : > "$out/stdout"
        echo "not run: setup step $failed_setup failed" > "$out/stderr"
        echo 0 > "$out/seconds"
        echo 125 > "$out/code"
        continue
    fi
    if [ -n "$group" ]; then
        # Only checks are grouped (tests/src/vm.rs), so none of these can
        # stop the group.
        run_step "$dir" "$out" &
        running_group=$group
    elif ! run_step "$dir" "$out"; then
        failed_setup="$(cat "$dir/name") ($n)"
    fi
done
wait
uptime_s > "$results/done"
echo "harness: done at $(uptime_s) s"
