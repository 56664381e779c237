#!/bin/sh
# Build the Debian package of unitgate with dpkg-deb alone (no cargo-deb to
# compile, no debhelper): seconds on CI.
#
#   cargo build --release && sh deploy/deb/build-deb.sh [OUTDIR]
#
# Binaries come from ${CARGO_TARGET_DIR:-target}/release; the package is
# written to OUTDIR (default: ${CARGO_TARGET_DIR:-target}/debian) and its
# path printed on the last line. Layout (PREFIX=/usr):
#   /usr/bin/unitgate, /usr/libexec/unitgate/unitgate-systemctl (root 0755)
#   /usr/share/man/man1/unitgate.1.gz, unitgate-COMMAND.1.gz, bash/zsh/fish
#       completions, /usr/share/unitgate/schema/unitgate.schema.json
#   /usr/share/doc/unitgate/{README,deploy,cli,watch}.md.gz
#   /etc/unitgate/apps/ (empty: no app is active until an operator adds one)
#   /usr/lib/systemd/system/<reference app templates> (never enabled)
#   /usr/lib/unitgate/apps/<app>/ (their support programs)
#   /usr/share/unitgate/deploy/ (installer kit: activate a reference app with
#       sudo PREFIX=/usr sh /usr/share/unitgate/deploy/install.sh --app-only \
#            --app /usr/share/unitgate/deploy/apps/left4me-server)
#   /usr/share/unitgate/sudoers (the drop-in; postinst validates it with
#       visudo and only then installs it as /etc/sudoers.d/unitgate, 0440)
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$here/$target ;; esac
release=$target/release
out=${1:-$target/debian}
PREFIX=/usr

die() { printf 'build-deb: %s\n' "$*" >&2; exit 1; }
for bin in unitgate unitgate-systemctl; do
    [ -x "$release/$bin" ] || die "$release/$bin not found (run: cargo build --release)"
done
command -v dpkg-deb >/dev/null || die "dpkg-deb not found"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$here/Cargo.toml")
[ -n "$version" ] || die "no version in Cargo.toml [workspace.package]"
arch=$(dpkg --print-architecture)
apps="left4me-server drdr-x runner-pool task-runner drdr-main drdr-render orchestrator"

stage=$(mktemp -d "${TMPDIR:-/tmp}/unitgate-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
umask 022

# Programs.
install -D -m 0755 "$release/unitgate" "$root$PREFIX/bin/unitgate"
install -D -m 0755 "$release/unitgate-systemctl" "$root$PREFIX/libexec/unitgate/unitgate-systemctl"
strip --strip-unneeded "$root$PREFIX/bin/unitgate" "$root$PREFIX/libexec/unitgate/unitgate-systemctl" 2>/dev/null || true

# Man pages (unitgate(1) and one per command) and completions, generated
# from the CLI's own clap definition, in a fixed environment (a
# UNITGATE_COMPLETE of the builder's would turn them into something else).
ug() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$release/unitgate" "$@"; }
install -d "$root$PREFIX/share/man/man1" "$root$PREFIX/share/bash-completion/completions" \
    "$root$PREFIX/share/zsh/vendor-completions" "$root$PREFIX/share/fish/vendor_completions.d"
ug man --dir "$stage/man" --prefix "$PREFIX" > /dev/null || die "unitgate man failed"
for page in "$stage"/man/*.1; do
    gzip -9n < "$page" > "$root$PREFIX/share/man/man1/${page##*/}.gz"
done
ug completions bash > "$root$PREFIX/share/bash-completion/completions/unitgate"
ug completions zsh > "$root$PREFIX/share/zsh/vendor-completions/_unitgate"
ug completions fish > "$root$PREFIX/share/fish/vendor_completions.d/unitgate.fish"
# The JSON schema every --json document follows, where the pages say.
install -D -m 0644 "$here/docs/schema/unitgate.schema.json" "$root$PREFIX/share/unitgate/schema/unitgate.schema.json"

# Config directory (empty) and the sudoers drop-in, inactive until postinst.
install -d -m 0755 "$root/etc/unitgate" "$root/etc/unitgate/apps"
install -d "$root$PREFIX/share/unitgate"
sed "s|@LIBEXECDIR@|$PREFIX/libexec/unitgate|g" "$here/sudoers/unitgate" > "$root$PREFIX/share/unitgate/sudoers"
chmod 0440 "$root$PREFIX/share/unitgate/sudoers"
for checker in visudo visudo-rs; do
    if command -v "$checker" >/dev/null; then
        "$checker" -cqf "$root$PREFIX/share/unitgate/sudoers" >/dev/null || die "the sudoers drop-in does not pass $checker -c"
    fi
done

# Reference apps: templates (not enabled), support programs, installer kit.
# prerm stops and disables every instance of these templates on removal:
# it gets their names from here, so that no template is left out of it.
timers='' services=''
for app in $apps; do
    src=$here/deploy/apps/$app
    for unit in "$src"/*.service "$src"/*.timer; do
        [ -f "$unit" ] || continue
        name=$(basename "$unit")
        # prerm matches instances by these names: plain characters only.
        case $name in
            *[!A-Za-z0-9:_.@-]*) die "$app: unit name $name has characters prerm does not expect" ;;
            ?*@.timer) timers="$timers $name" ;;
            ?*@.service) services="$services $name" ;;
            *) die "$app: $name is not a template; prerm would leave it enabled" ;;
        esac
        install -d "$root$PREFIX/lib/systemd/system"
        sed "s|@PREFIX@|$PREFIX|g" "$unit" > "$root$PREFIX/lib/systemd/system/$(basename "$unit")"
        chmod 0644 "$root$PREFIX/lib/systemd/system/$(basename "$unit")"
    done
    if [ -d "$src/lib" ]; then
        for f in "$src"/lib/*; do
            install -d "$root$PREFIX/lib/unitgate/apps/$app"
            sed "s|@PREFIX@|$PREFIX|g" "$f" > "$root$PREFIX/lib/unitgate/apps/$app/$(basename "$f")"
            chmod 0755 "$root$PREFIX/lib/unitgate/apps/$app/$(basename "$f")"
        done
    fi
done
# The deferred daemon-reload: script, service and timer (postinst enables
# the timer).
install -d "$root$PREFIX/lib/systemd/system"
sed "s|@PREFIX@|$PREFIX|g" "$here/deploy/systemd/unitgate-reload" > "$root$PREFIX/libexec/unitgate/unitgate-reload"
chmod 0755 "$root$PREFIX/libexec/unitgate/unitgate-reload"
for unit in unitgate-reload.service unitgate-reload.timer; do
    sed "s|@PREFIX@|$PREFIX|g" "$here/deploy/systemd/$unit" > "$root$PREFIX/lib/systemd/system/$unit"
    chmod 0644 "$root$PREFIX/lib/systemd/system/$unit"
done
kit=$root$PREFIX/share/unitgate/deploy
install -d "$kit/lib" "$kit/apps" "$kit/systemd"
install -m 0644 "$here/deploy/systemd/50-unitgate-guard.conf" "$kit/systemd/"
install -m 0755 "$here/deploy/install.sh" "$here/deploy/uninstall.sh" "$kit/"
install -m 0644 "$here/deploy/lib/app.sh" "$kit/lib/"
for app in $apps; do
    (cd "$here/deploy/apps" && find "$app" -path "$app/standin" -prune -o -type f -print) | while IFS= read -r f; do
        mode=0644; [ -x "$here/deploy/apps/$f" ] && mode=0755
        install -D -m "$mode" "$here/deploy/apps/$f" "$kit/apps/$f"
    done
done

# Documentation.
install -d "$root$PREFIX/share/doc/unitgate"
[ -f "$here/README.md" ] && gzip -9n < "$here/README.md" > "$root$PREFIX/share/doc/unitgate/README.md.gz"
for doc in deploy cli watch; do
    gzip -9n < "$here/docs/$doc.md" > "$root$PREFIX/share/doc/unitgate/$doc.md.gz"
done
cat > "$root$PREFIX/share/doc/unitgate/copyright" <<COPY
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: unitgate
Files: *
License: MIT or Apache-2.0
COPY

# Maintainer scripts.
install -d "$root/DEBIAN"
installed_size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: unitgate
Version: $version
Architecture: $arch
Maintainer: unitgate developers <unitgate@localhost>
Installed-Size: $installed_size
Depends: libc6 (>= 2.34), libgcc-s1, sudo | sudo-rs, systemd
Section: admin
Priority: optional
Description: run the lifecycle of templated systemd services without root
 unitgate lets an unprivileged account install, initialise, start, stop,
 restart, delete and watch the instances of a templated systemd service
 (app@instance.service) through a small privileged helper run by sudo,
 validated against root-owned per-app policies in /etc/unitgate/apps/.
 .
 Ships reference apps (Left 4 Dead 2 servers, Xvfb displays, a job-runner
 pool, a task dispatcher, a tmux orchestrator's scheduler) as hardened unit
 templates that are never enabled by the package.
CONTROL
for script in postinst postrm; do
    install -m 0755 "$here/deploy/deb/$script" "$root/DEBIAN/$script"
done
templates=$(echo $timers $services)
[ -n "$templates" ] || die "no unit template found in the reference apps"
sed "s|@TEMPLATES@|$templates|" "$here/deploy/deb/prerm" > "$root/DEBIAN/prerm"
chmod 0755 "$root/DEBIAN/prerm"
! grep -q '@TEMPLATES@' "$root/DEBIAN/prerm" || die "prerm: the template list was not written"
# Every regular file but the config directory's contents is dpkg-owned;
# there are no conffiles (the sudoers drop-in is written by postinst).
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's|  \./|  |') > "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb=$out/unitgate_${version}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
