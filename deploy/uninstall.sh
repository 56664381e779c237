#!/bin/sh
# Remove what deploy/install.sh added. App configs in /etc/unitgate/apps/
# and instance data are kept. Idempotent; sudo keeps working throughout
# (the drop-in goes first, so sudo never points at a missing helper).
#
#   sudo deploy/uninstall.sh --app NAME [--app NAME]... [--purge]
#
# removes only those apps (installed with install.sh --app): stops and
# disables every instance of their units, removes their units and support
# programs and their unedited config and skeleton files, daemon-reloads.
# Instance data (the app's directories) and its service account are kept;
# --purge removes them too, and edited config files as well: never through
# a link, an account's files as that account, the account last.
#
# Root removes files only from directories no other account can change;
# anything else is refused before anything is removed (see "Where root
# acts" in docs/deploy.md).
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
libexecdir=$PREFIX/libexec/unitgate
group=unitgate
here=$(cd "$(dirname "$0")/.." && pwd)

say() { printf 'unitgate uninstall: %s\n' "$*"; }
die() { printf 'unitgate uninstall: %s\n' "$*" >&2; exit 1; }

apps=
purge=no
while [ $# -gt 0 ]; do
    case $1 in
        --app) [ $# -ge 2 ] || { echo "unitgate uninstall: --app needs a name" >&2; exit 64; }
               apps="$apps $2"; shift 2 ;;
        --app=*) apps="$apps ${1#--app=}"; shift ;;
        --purge) purge=yes; shift ;;
        -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "unitgate uninstall: unknown argument '$1' (see --help)" >&2; exit 64 ;;
    esac
done

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    echo "unitgate uninstall: must run as root" >&2; exit 1
fi

# Path checks (walk, root_dir_ok) and the app uninstaller.
. "$here/deploy/lib/app.sh"

if [ -n "$apps" ]; then
    for app in $apps; do
        case $app in */*) app=$(basename "$app") ;; esac
        uninstall_app "$app" "$purge"
    done
    exit 0
fi
if [ "$purge" = yes ]; then
    echo "unitgate uninstall: --purge applies to --app NAME only" >&2; exit 64
fi

# Root removes files only from directories that are root's alone, from /
# down; checked before anything is removed.
problems=
share=$DESTDIR$PREFIX/share
case $PREFIX in
    /usr) zshcompdir=$share/zsh/vendor-completions ;;
    *) zshcompdir=$share/zsh/site-functions ;;
esac
for dir in "$DESTDIR/etc/sudoers.d" "$DESTDIR$libexecdir" "$DESTDIR$PREFIX/bin" \
    "$DESTDIR$PREFIX/lib/systemd/system" \
    "$DESTDIR/etc/unitgate/apps" "$DESTDIR/var/lib/unitgate" "$share/man/man1" \
    "$share/bash-completion/completions" "$zshcompdir" "$share/fish/vendor_completions.d" \
    "$share/unitgate/schema" "$share/doc/unitgate"; do
    root_dir_ok "$dir" || problems="$problems
refusing to remove anything from $dir: $(walk_why)"
done
if [ -n "$problems" ]; then
    printf '%s\n' "$problems" | sed '/^$/d; s/^/unitgate uninstall: /' >&2
    die "nothing was removed (root removes files only where every directory from / is root's and not group/world-writable)"
fi

remove() {
    if [ -e "$1" ] || [ -L "$1" ]; then rm -f -- "$1"; say "removed $1"; fi
}

remove "$DESTDIR/etc/sudoers.d/unitgate"
# The deferred reload goes with the helper; one last reload below loads
# whatever the helper changed since the timer's last run.
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl disable --now unitgate-reload.timer >/dev/null 2>&1 || true
fi
remove "$DESTDIR$PREFIX/lib/systemd/system/unitgate-reload.timer"
remove "$DESTDIR$PREFIX/lib/systemd/system/unitgate-reload.service"
remove "$DESTDIR$libexecdir/unitgate-reload"
remove "$DESTDIR$libexecdir/unitgate-systemctl"
rmdir "$DESTDIR$libexecdir" 2>/dev/null || true
remove "$DESTDIR$PREFIX/bin/unitgate"
# The pages of every version's commands are named unitgate-COMMAND.1.
for page in "$share/man/man1/unitgate.1" "$share/man/man1"/unitgate-*.1; do
    remove "$page"
done
remove "$share/bash-completion/completions/unitgate"
remove "$zshcompdir/_unitgate"
remove "$share/fish/vendor_completions.d/unitgate.fish"
remove "$share/unitgate/schema/unitgate.schema.json"
remove "$share/doc/unitgate/cli.md"
remove "$share/doc/unitgate/watch.md"
# Ours alone; the shared completion and man directories stay.
rmdir "$share/unitgate/schema" "$share/unitgate" "$share/doc/unitgate" 2>/dev/null || true
# Directories are removed only when empty: an operator's configs stay.
rmdir "$DESTDIR/etc/unitgate/apps" "$DESTDIR/etc/unitgate" 2>/dev/null || true
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    rm -f /run/unitgate/reload-pending /run/unitgate/reload-inflight /run/unitgate/reload-not-before
fi
if [ -z "$DESTDIR" ] && [ -e /var/lib/unitgate/created-group ]; then
    if getent group "$group" >/dev/null; then groupdel "$group"; say "removed group $group"; fi
    rm -f /var/lib/unitgate/created-group
    rmdir /var/lib/unitgate 2>/dev/null || true
fi
