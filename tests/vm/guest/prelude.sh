# Sourced by every check of the VM tier before its script (tests/src/vm.rs,
# run by harness.sh as root): strict mode, a plain environment, and the few
# shell functions checks share.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C HOME=/root
cd /

# as_user USER COMMAND ARGS...: runs COMMAND as USER (real and effective
# uid and gid, USER's groups, a fresh login-like environment), the way a
# service account runs unitgate; its sudo is the real one.
as_user() {
    _u=$1
    shift
    setpriv --reuid="$_u" --regid="$(id -g -- "$_u")" --init-groups --reset-env -- "$@"
}

# wait_until SECONDS WHAT COMMAND ARGS...: polls COMMAND until it succeeds;
# after SECONDS it fails the check, naming WHAT and COMMAND's last output.
# A deadline on a condition, never a fixed sleep.
wait_until() {
    _secs=$1
    _what=$2
    shift 2
    _end=$(($(date +%s) + _secs))
    until _last=$("$@" 2>&1); do
        if [ "$(date +%s)" -ge "$_end" ]; then
            echo "timed out after ${_secs}s waiting for $_what; last try ($*): $_last" >&2
            return 1
        fi
        sleep 0.1
    done
}

# cgroup_of UNIT: the unit's cgroup directory (empty when it has none).
cgroup_of() {
    _cg=$(systemctl show -P ControlGroup -- "$1")
    [ -n "$_cg" ] && echo "/sys/fs/cgroup$_cg"
}
