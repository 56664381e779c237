#!/bin/sh
# The VM tier's harness, run as root by the image's unitgate-vm-job.service
# once the guest is up. The host (tests/src/vm.rs) put it in the job share
# with the checks: /mnt/job/checks/NNN/{name,script,deadline,kind}, run here in
# order, one at a time (a measurement never shares the guest with another
# check). Each check's stdout, stderr, exit code and run time land in
# /mnt/job/results/NNN/; `code` is written last, so its presence says the
# check finished. A failed `setup` step means the checks after it cannot
# mean anything: they are recorded as not run, with the reason.
# The share is 9p without a cache, so every write is on the host when the
# call returns; results/done says the harness got to the end.
set -u
job=/mnt/job
results=$job/results

uptime_s() { cut -d' ' -f1 /proc/uptime; }

uptime_s > "$results/checks-started"
echo "harness: checks start at $(cat "$results/checks-started") s of guest uptime"
failed_setup=
for dir in "$job"/checks/*/; do
    n=$(basename "$dir")
    out=$results/$n
    mkdir -p "$out"
    if [ -n "$failed_setup" ]; then
        : > "$out/stdout"
        echo "not run: setup step $failed_setup failed" > "$out/stderr"
        echo 0 > "$out/seconds"
        echo 125 > "$out/code"
        continue
    fi
    name=$(cat "$dir/name")
    deadline=$(cat "$dir/deadline")
    kind=$(cat "$dir/kind")
    began=$(uptime_s)
    echo "harness: $n $name ($kind, deadline ${deadline}s)"
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
    echo "harness: $n $name: exit $code in ${seconds}s"
    if [ "$kind" = setup ] && [ "$code" != 0 ]; then
        failed_setup="$name ($n)"
    fi
done
uptime_s > "$results/done"
echo "harness: done at $(uptime_s) s"
