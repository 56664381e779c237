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

# uptime_cs: the guest's uptime in hundredths of a second (/proc/uptime has
# two decimals; the "1" keeps a fraction such as 08 from being octal).
uptime_cs() {
    read -r _up _idle < /proc/uptime
    _cs=$((${_up%.*} * 100 + 1${_up#*.} - 100))
}

# wait_until SECONDS WHAT COMMAND ARGS...: polls COMMAND until it succeeds;
# after SECONDS it fails the check, naming WHAT and COMMAND's last output.
# A deadline on a condition, never a fixed sleep.
#
# The guest has one emulated CPU, where every fork and exec costs real
# time: a poller forking date and sleep ten times a second competes with
# the job it watches (measurements among them). So the pause grows from
# 0.1 s to 1 s, and the clock is read from /proc/uptime by the shell.
wait_until() {
    _secs=$1
    _what=$2
    shift 2
    uptime_cs
    _end=$((_cs + _secs * 100))
    _nap=0.1
    until _last=$("$@" 2>&1); do
        uptime_cs
        if [ "$_cs" -ge "$_end" ]; then
            echo "timed out after ${_secs}s waiting for $_what; last try ($*): $_last" >&2
            return 1
        fi
        sleep "$_nap"
        case $_nap in
            0.1) _nap=0.2 ;;
            0.2) _nap=0.5 ;;
            *) _nap=1 ;;
        esac
    done
}

# cgroup_of UNIT: the unit's cgroup directory (empty when it has none).
cgroup_of() {
    _cg=$(systemctl show -P ControlGroup -- "$1")
    [ -n "$_cg" ] && echo "/sys/fs/cgroup$_cg"
}
