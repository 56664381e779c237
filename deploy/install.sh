#!/bin/sh
# Install unitgate: the CLI, the privileged helper and the sudoers drop-in,
# with the man pages, bash/zsh/fish completions, JSON schema and docs.
#
#   sudo deploy/install.sh                 # PREFIX=/usr/local
#   PREFIX=/usr sudo deploy/install.sh
#   DESTDIR=/tmp/stage deploy/install.sh   # staged (packaging): no users, no checks on the live system
#
# Binaries come from ${CARGO_TARGET_DIR:-target}/release (relative to the
# checkout); build them first with `cargo build --release`.
# Idempotent: running it twice changes nothing the second time. Without --app it never
# touches app configs in /etc/unitgate/apps/ or any instance data.
#
# Apps (see docs/deploy.md and deploy/apps/*/README.md):
#
#   sudo deploy/install.sh --app deploy/apps/left4me-server [--app DIR]...
#   sudo deploy/install.sh --app-only --app DIR     # unitgate itself already installed
#
# installs, for each app directory DIR (named after the app): its service
# account (install.conf: account=, home=) added to group unitgate, its
# directories owned by that account (dirs=), its unit files into
# $PREFIX/lib/systemd/system (and, for a template wanted by
# multi-user.target, unitgate's guard drop-in into
# /etc/systemd/system/<template>.d/), its support programs (lib/) into
# $PREFIX/lib/unitgate/apps/NAME/, its config as /etc/unitgate/apps/NAME.toml
# and its skeleton into /etc/unitgate/skel/NAME/, then `systemctl
# daemon-reload`. "@PREFIX@" in app files becomes $PREFIX. A config or
# skeleton file the operator edited is never overwritten: the new version is
# installed beside it as FILE.new and the installer says so. Nothing is
# enabled or started. What was installed is recorded in
# /var/lib/unitgate/apps/NAME/ for `deploy/uninstall.sh --app NAME`.
#
# Root writes only where no other account can change the path (every
# directory from / root's and not group/world-writable); an app's
# directories below one its account owns are made as that account. What
# does not hold is refused, with the reason, before anything changes (see
# "Where root acts" in docs/deploy.md).
set -eu

apps=
core=yes
while [ $# -gt 0 ]; do
    case $1 in
        --app) [ $# -ge 2 ] || { echo "unitgate install: --app needs a directory" >&2; exit 64; }
               apps="$apps
$2"; shift 2 ;;
        --app=*) apps="$apps
${1#--app=}"; shift ;;
        --app-only) core=no; shift ;;
        -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unitgate install: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
here=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$here/$target ;; esac
release=$target/release

bindir=$PREFIX/bin
libexecdir=$PREFIX/libexec/unitgate
sharedir=$PREFIX/share
mandir=$sharedir/man/man1
bashcompdir=$sharedir/bash-completion/completions
# Debian's zsh searches vendor-completions under /usr, site-functions
# under /usr/local (and upstream zsh site-functions under its prefix).
case $PREFIX in
    /usr) zshcompdir=$sharedir/zsh/vendor-completions ;;
    *) zshcompdir=$sharedir/zsh/site-functions ;;
esac
fishcompdir=$sharedir/fish/vendor_completions.d
schemadir=$sharedir/unitgate/schema
docdir=$sharedir/doc/unitgate
helper=$libexecdir/unitgate-systemctl
sudoers_dir=/etc/sudoers.d
group=unitgate

say() { printf 'unitgate install: %s\n' "$*"; }
die() { printf 'unitgate install: %s\n' "$*" >&2; exit 1; }
# Shared file-installing helpers and the app installer.
. "$here/deploy/lib/app.sh"

check_inputs() {
    for bin in unitgate unitgate-systemctl; do
        [ -x "$release/$bin" ] || die "$release/$bin not found (run: cargo build --release)"
    done
    if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
        die "must run as root (or set DESTDIR to stage the files)"
    fi
    case $PREFIX in /*) ;; *) die "PREFIX must be an absolute path (got '$PREFIX')" ;; esac
    # Every directory written below must be root's alone, from / down (an
    # odd PREFIX must not make root write where an account could swap the
    # helper); checked before anything changes.
    problems=
    for dir in "$DESTDIR$bindir" "$DESTDIR$libexecdir" "$DESTDIR/etc/unitgate/apps" \
        "$DESTDIR$sudoers_dir" "$DESTDIR/var/lib/unitgate" "$DESTDIR$mandir" \
        "$DESTDIR$bashcompdir" "$DESTDIR$zshcompdir" "$DESTDIR$fishcompdir" \
        "$DESTDIR$schemadir" "$DESTDIR$docdir"; do
        root_dir_ok "$dir" || problems="$problems
refusing to write in $dir: $(walk_why)"
    done
    if [ -n "$problems" ]; then
        printf '%s\n' "$problems" | sed '/^$/d; s/^/unitgate install: /' >&2
        die "nothing was installed (root writes only where every directory from / is root's and not group/world-writable)"
    fi
}

# root_dir_0755 DIR: root_dir, and mode 0755 (callers must read what is in it).
root_dir_0755() {
    root_dir "$1"
    [ "$(stat -c %a -- "$1")" = 755 ] || chmod 0755 -- "$1"
}

# Binaries are copied byte for byte (no @PREFIX@ substitution).
install_file() { # src dest mode
    install_atomic "$2" "$3" < "$1"
}

install_binaries() {
    # The helper's own directory must not let anyone but root swap the
    # binary sudo runs as root: root_dir refuses one that another account
    # owns or can write (it may already have swapped it: inspect it first).
    root_dir_0755 "$DESTDIR$libexecdir"
    install_file "$release/unitgate" "$DESTDIR$bindir/unitgate" 0755
    # The helper runs as root through sudo: root-owned, never setuid.
    install_file "$release/unitgate-systemctl" "$DESTDIR$helper" 0755
}

# The deferred daemon-reload (docs/design/constant-cost.md): the script,
# its oneshot service and the timer that runs it, enabled and started.
install_reload() {
    install_subst "$here/deploy/systemd/unitgate-reload" "$DESTDIR$libexecdir/unitgate-reload" 0755
    for unit in unitgate-reload.service unitgate-reload.timer; do
        install_subst "$here/deploy/systemd/$unit" "$DESTDIR$PREFIX/lib/systemd/system/$unit" 0644
    done
    if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
        # One reload, for the new units; the timer's link is read at boot,
        # so its enable needs none of its own.
        systemctl daemon-reload
        systemctl enable --no-reload unitgate-reload.timer 2>/dev/null
        systemctl start unitgate-reload.timer
    fi
}

# The man pages and completion code, generated by the unitgate being
# installed (its own clap definition, so they describe this version), the
# JSON schema and the documentation. The binary is the build tree's, like
# the helper installed above: whoever could change it could change the
# helper too, so running it adds no trust. It runs with a fixed
# environment (UNITGATE_COMPLETE, say, would turn it into a completion
# answer) and writes only into a fresh directory of root's; every file then
# goes in place by install_atomic (0644, root's, renamed into a directory
# checked to be root's alone from /).
install_docs() {
    gen=$(mktemp -d /tmp/unitgate-install.XXXXXX)
    ug() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$release/unitgate" "$@"; }
    if ! ug man --dir "$gen/man" --prefix "$PREFIX" > /dev/null \
        || ! ug completions bash > "$gen/bash" \
        || ! ug completions zsh > "$gen/zsh" \
        || ! ug completions fish > "$gen/fish"; then
        rm -rf "$gen"
        die "$release/unitgate could not generate its man pages and completions"
    fi
    for page in "$gen"/man/*.1; do
        install_file "$page" "$DESTDIR$mandir/${page##*/}" 0644
    done
    # The page of a command this version no longer has would describe a
    # command that fails (the directory is root's: checked above).
    for page in "$DESTDIR$mandir"/unitgate-*.1; do
        [ -e "$page" ] && [ ! -e "$gen/man/${page##*/}" ] || continue
        rm -f -- "$page"
        say "removed $page (no such command any more)"
    done
    install_file "$gen/bash" "$DESTDIR$bashcompdir/unitgate" 0644
    install_file "$gen/zsh" "$DESTDIR$zshcompdir/_unitgate" 0644
    install_file "$gen/fish" "$DESTDIR$fishcompdir/unitgate.fish" 0644
    rm -rf "$gen"
    install_file "$here/docs/schema/unitgate.schema.json" "$DESTDIR$schemadir/unitgate.schema.json" 0644
    install_file "$here/docs/cli.md" "$DESTDIR$docdir/cli.md" 0644
    install_file "$here/docs/watch.md" "$DESTDIR$docdir/watch.md" 0644
}

create_group() {
    [ -z "$DESTDIR" ] || return 0
    if ! getent group "$group" >/dev/null; then
        groupadd --system "$group"
        root_dir_0755 /var/lib/unitgate
        : > /var/lib/unitgate/created-group
        say "created group $group"
    fi
}

create_config_dir() {
    root_dir_0755 "$DESTDIR/etc/unitgate"
    root_dir_0755 "$DESTDIR/etc/unitgate/apps"
}

# The sudoers checkers present: sudo's visudo, sudo-rs's visudo-rs (Debian
# ships sudo-rs's under that name; where sudo-rs is /usr/bin/sudo, as on
# Ubuntu 25.10, sudo's own visudo may be gone). The drop-in must pass every
# one there is, since either sudo may be the one that reads it.
sudoers_checkers() {
    for checker in visudo visudo-rs; do
        if command -v "$checker" >/dev/null; then printf '%s\n' "$checker"; fi
    done
}

# sudoers_valid [FILE]: FILE (default: the whole configuration) passes
# every checker; at least one must exist.
sudoers_valid() {
    checkers=$(sudoers_checkers)
    [ -n "$checkers" ] || return 1
    for checker in $checkers; do
        if [ $# -gt 0 ]; then
            "$checker" -cqf "$1" >/dev/null || return 1
        else
            "$checker" -cq >/dev/null || return 1
        fi
    done
}

# place_sudoers NAME: standard input as the sudoers drop-in
# $DESTDIR$sudoers_dir/NAME (root's, 0440). It is validated with visudo (or
# visudo-rs) before it is moved into place (a broken drop-in would lock
# every operator out of sudo), and moved by rename(2) from a name sudo
# ignores (it contains a dot) so sudo never reads a half-written file.
# Unchanged: left alone.
place_sudoers() {
    p_dest=$DESTDIR$sudoers_dir/$1
    root_dir "$DESTDIR$sudoers_dir"
    p_tmp=$(mktemp "$DESTDIR$sudoers_dir/.unitgate.XXXXXX")
    cat > "$p_tmp"
    chmod 0440 "$p_tmp"
    [ -n "$DESTDIR" ] || chown root:root "$p_tmp"
    if [ -n "$(sudoers_checkers)" ]; then
        sudoers_valid "$p_tmp" || { rm -f "$p_tmp"; die "sudoers drop-in $1 failed $(sudoers_checkers | paste -sd/ -) -c; nothing installed"; }
    elif [ -z "$DESTDIR" ]; then
        rm -f "$p_tmp"; die "neither visudo nor visudo-rs found: install sudo (or sudo-rs) first"
    fi
    if [ -f "$p_dest" ] && cmp -s "$p_tmp" "$p_dest"; then
        rm -f "$p_tmp"
        return 0
    fi
    mv -f "$p_tmp" "$p_dest"
    say "installed $p_dest"
    # Belt and braces: the whole configuration must still parse.
    if [ -z "$DESTDIR" ] && ! sudoers_valid; then
        rm -f "$p_dest"
        die "sudo configuration invalid after adding $p_dest; removed it again"
    fi
}

# A here-document, not a pipe: place_sudoers runs in this shell, so its
# `die` ends the install whatever `set -e` does around the call.
install_sudoers() {
    place_sudoers unitgate <<EOF
$(sed "s|@LIBEXECDIR@|$libexecdir|g" "$here/sudoers/unitgate")
EOF
}

if [ "$core" = yes ]; then
    check_inputs
    create_group
    install_binaries
    install_reload
    install_docs
    create_config_dir
    install_sudoers
    say "done (helper: $helper; callers need group '$group' and an app in /etc/unitgate/apps/)"
fi
if [ -n "$apps" ]; then
    printf '%s\n' "$apps" | while IFS= read -r app_dir; do
        [ -n "$app_dir" ] || continue
        install_app "$app_dir"
    done
fi
