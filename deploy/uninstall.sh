#!/bin/sh
# Remove what deploy/install.sh added. App configs in /etc/unitgate/apps/
# and instance data are kept. Idempotent; sudo keeps working throughout
# (the drop-in goes first, so sudo never points at a missing helper).
set -eu

PREFIX=${PREFIX:-/usr/local}
DESTDIR=${DESTDIR:-}
libexecdir=$PREFIX/libexec/unitgate
group=unitgate

say() { printf 'unitgate uninstall: %s\n' "$*"; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    echo "unitgate uninstall: must run as root" >&2; exit 1
fi

remove() {
    if [ -e "$1" ] || [ -L "$1" ]; then rm -f -- "$1"; say "removed $1"; fi
}

remove "$DESTDIR/etc/sudoers.d/unitgate"
remove "$DESTDIR$libexecdir/unitgate-systemctl"
rmdir "$DESTDIR$libexecdir" 2>/dev/null || true
remove "$DESTDIR$PREFIX/bin/unitgate"
# Directories are removed only when empty: an operator's configs stay.
rmdir "$DESTDIR/etc/unitgate/apps" "$DESTDIR/etc/unitgate" 2>/dev/null || true
if [ -z "$DESTDIR" ] && [ -e /var/lib/unitgate/created-group ]; then
    if getent group "$group" >/dev/null; then groupdel "$group"; say "removed group $group"; fi
    rm -f /var/lib/unitgate/created-group
    rmdir /var/lib/unitgate 2>/dev/null || true
fi
