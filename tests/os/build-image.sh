#!/bin/sh
# Builds the test bed's Debian 13 (trixie) root filesystems into DEST, a new
# directory (tests/src/os.rs calls this, under its lock, into a temporary
# directory it then renames into place):
#
#   DEST/sudo      debootstrap minbase + tests/os/trixie.packages
#   DEST/sudo-rs   the same tree with sudo-rs as /usr/bin/sudo (sudo's own
#                  programs diverted aside, as Ubuntu 25.10 does it)
#
#   sh tests/os/build-image.sh DEST
#
# Needs root and debootstrap. Only Debian's archive is contacted. The test
# bed hashes this script and the package list into the cache directory's
# name, so editing either rebuilds the image.
set -eu

dest=${1:?usage: build-image.sh DEST}
here=$(cd "$(dirname "$0")" && pwd)
suite=trixie
mirror=http://deb.debian.org/debian

packages=$(grep -v '^[[:space:]]*\(#\|$\)' "$here/trixie.packages" | paste -sd, -)
[ -n "$packages" ] || { echo "build-image: no packages in $here/trixie.packages" >&2; exit 1; }

mkdir -m 0700 -- "$dest"
base=$dest/sudo
debootstrap --variant=minbase --include="$packages" "$suite" "$base" "$mirror"

# Nothing in the machine may fetch packages, and the lists are 100 MB of
# dead weight in every copy.
chroot "$base" apt-get clean
rm -rf -- "$base"/var/lib/apt/lists/*

# No machine-id of the build's: each machine's systemd makes its own at
# its first boot and keeps it in the machine's /etc (the kernel command line
# has systemd.firstboot=off, so nothing prompts for one).
: > "$base/etc/machine-id"

# debootstrap copies the building host's name and resolver; a machine is
# named by nspawn (and resolves that name through nss-myhostname) and has
# no network.
rm -f -- "$base/etc/hostname" "$base/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$base/etc/hosts"
grep -q '^hosts:.*myhostname' "$base/etc/nsswitch.conf" || { echo "build-image: nss-myhostname is not in nsswitch.conf" >&2; exit 1; }

cp -a -- "$base" "$dest/sudo-rs"
rs=$dest/sudo-rs
# The way Ubuntu 25.10 switches: sudo stays installed (its /etc/sudoers,
# which includes /etc/sudoers.d, is the configuration sudo-rs reads too)
# but its programs move aside as *.ws, and /usr/bin/sudo is sudo-rs.
# visudo is left under sudo-rs's Debian name only, visudo-rs.
for prog in /usr/bin/sudo /usr/sbin/visudo; do
    chroot "$rs" dpkg-divert --quiet --local --rename --divert "$prog.ws" --add "$prog"
done
[ -x "$rs/usr/lib/cargo/bin/sudo" ] || { echo "build-image: sudo-rs is not /usr/lib/cargo/bin/sudo" >&2; exit 1; }
ln -s ../lib/cargo/bin/sudo "$rs/usr/bin/sudo"
[ -x "$rs/usr/bin/visudo-rs" ] && [ ! -e "$rs/usr/sbin/visudo" ] || { echo "build-image: visudo is not only visudo-rs" >&2; exit 1; }
