#!/bin/sh
# Builds the VM tier's guest image from Debian packages into OUTDIR (an empty
# directory on the host): a debootstrap'd Debian 13 with the packages of
# packages.txt beside this script, as
#
#   OUTDIR/vmlinuz      the guest kernel (QEMU boots it directly, no loader)
#   OUTDIR/initrd.img   an initramfs with just what mounts the root disk
#                       (initramfs-init beside this script)
#   OUTDIR/rootfs.img   an ext4 image of the root filesystem (mkfs.ext4 -d)
#   OUTDIR/packages     what got installed (dpkg-query), for post-mortems
#
#   sh tests/vm/image/build.sh OUTDIR
#
# Run as root by the test bed (tests/src/vm/image.rs), which owns caching,
# locking and the rename into place; this script only builds. It runs itself
# in private mount and pid namespaces, so the /proc and /sys mounts
# debootstrap makes in the chroot, and every process it starts, end with it
# even when it is killed: nothing is left mounted or running on the host.
#
# Packages come from the Debian mirror the host's apt uses (its sources), so
# a host behind a local mirror builds from that mirror.
set -eu

if [ "${UNITGATE_VM_BUILD_NAMESPACED:-}" != 1 ]; then
    exec unshare --mount --propagation private --pid --fork --kill-child --mount-proc \
        env UNITGATE_VM_BUILD_NAMESPACED=1 sh "$0" "$@"
fi

[ $# = 1 ] || { echo "usage: build.sh OUTDIR" >&2; exit 64; }
out=$1
here=$(cd "$(dirname "$0")" && pwd)
suite=trixie
rootfs=$out/rootfs

say() { printf 'vm image: %s\n' "$*"; }

# The first Debian archive URI in the host's apt sources (deb822 or one-line
# format), skipping the security archive; empty means debootstrap's default.
host_mirror() {
    {
        cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed -n 's/^URIs:[[:space:]]*//p' | tr ' ' '\n'
        cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            sed -n 's/^deb[[:space:]]\{1,\}\(\[[^]]*\][[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\).*/\2/p'
    } | grep -v -e '-security' -e '^$' | grep '/debian/\{0,1\}$' | head -n 1
}

packages=$(grep -v -e '^[[:space:]]*#' -e '^[[:space:]]*$' "$here/packages.txt" | tr '\n' ',' | sed 's/,$//')
mirror=$(host_mirror || true)
say "debootstrap --variant=minbase $suite (${mirror:-debootstrap's default mirror}) with $packages"
# Two stages, so that dpkg is told what not to unpack before it installs
# anything. The kernel package runs initramfs-tools' hook, which builds
# Debian's own initramfs (every module, compressed: a minute of the build)
# that no boot uses, since build.sh makes one of its own below; and the
# guest needs neither documentation, translations nor the drivers of real
# hardware (the disk, 9p and the kernel's cgroups are virtio and built-in,
# and what they need is outside these directories). Each file left out is
# one dpkg does not write and mkfs does not copy.
# shellcheck disable=SC2086 # $mirror is one word or none
debootstrap --foreign --variant=minbase --include="$packages" "$suite" "$rootfs" $mirror
mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
cat > "$rootfs/etc/dpkg/dpkg.cfg.d/unitgate-vm" <<'EOF'
path-exclude=/etc/kernel/postinst.d/initramfs-tools
path-exclude=/usr/share/doc/*
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-exclude=/*lib/modules/*/kernel/drivers/gpu/*
path-exclude=/*lib/modules/*/kernel/drivers/media/*
path-exclude=/*lib/modules/*/kernel/drivers/net/wireless/*
path-exclude=/*lib/modules/*/kernel/drivers/infiniband/*
path-exclude=/*lib/modules/*/kernel/drivers/staging/*
path-exclude=/*lib/modules/*/kernel/sound/*
EOF
chroot "$rootfs" /debootstrap/debootstrap --second-stage
# Said, not fatal: a Debian that moves the hook costs build time, not a
# wrong image.
if ls "$rootfs"/boot/initrd.img-* > /dev/null 2>&1; then
    say "warning: Debian's initramfs was built after all (its hook moved?)"
fi

say "configuring"
echo unitgate-vm > "$rootfs/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 unitgate-vm\n' > "$rootfs/etc/hosts"
# A fixed machine id: without one every boot is a "first boot", and systemd
# would run presets (enabling units nobody asked for) and systemd-firstboot.
systemd-machine-id-setup --root="$rootfs"
# QEMU names the root disk on the kernel command line; nothing else to mount.
: > "$rootfs/etc/fstab"

# Nothing logs in (the checks arrive through the job share) and nothing
# periodic may run into a measurement: no gettys, no timers. Under software
# emulation udev's coldplug and the modprobe@ units are half of a boot, and
# nothing here needs them once the initramfs has mounted the root disk
# (devtmpfs makes the nodes; the kernel loads 9p's modules on mount); logind
# serves login sessions, and there are none.
for unit in getty@.service serial-getty@.service apt-daily.timer apt-daily-upgrade.timer \
    dpkg-db-backup.timer e2scrub_all.timer fstrim.timer systemd-tmpfiles-clean.timer \
    systemd-udevd.service systemd-udev-trigger.service systemd-udev-settle.service \
    systemd-udevd-control.socket systemd-udevd-kernel.socket modprobe@.service \
    systemd-logind.service; do
    ln -sf /dev/null "$rootfs/etc/systemd/system/$unit"
done
install -m 0644 "$here/unitgate-vm-job.service" "$rootfs/etc/systemd/system/unitgate-vm-job.service"
mkdir -p "$rootfs/etc/systemd/system/multi-user.target.wants"
ln -sf ../unitgate-vm-job.service "$rootfs/etc/systemd/system/multi-user.target.wants/unitgate-vm-job.service"
mkdir -p "$rootfs/mnt/job" "$rootfs/mnt/src" "$rootfs/mnt/target"

chroot "$rootfs" dpkg-query -W -f '${Package} ${Version}\n' > "$out/packages"
kernel=$(find "$rootfs/boot" -maxdepth 1 -name 'vmlinuz-*' | sort | tail -n 1)
[ -n "$kernel" ] || { echo "vm image: no kernel in $rootfs/boot" >&2; exit 1; }
install -m 0644 "$kernel" "$out/vmlinuz"

# The initramfs: busybox, the modules that mount an ext4 virtio disk (in
# load order, decompressed: busybox's insmod reads plain .ko files) and
# initramfs-init as /init. Debian's own initramfs runs udev to do the same,
# which costs seconds of emulated CPU on every boot. Assembled inside the
# chroot, with its tools.
kver=${kernel##*/vmlinuz-}
stage=$rootfs/tmp/initramfs
mkdir -p "$stage/bin" "$stage/dev" "$stage/proc" "$stage/root" "$stage/modules"
cp "$rootfs/usr/bin/busybox" "$stage/bin/busybox"
n=0
for ko in $(chroot "$rootfs" modprobe --all --show-depends -S "$kver" virtio_blk ext4 | awk '$1 == "insmod" && !seen[$2]++ { print $2 }'); do
    n=$((n + 1))
    dest=/tmp/initramfs/modules/$(printf %02d "$n")-$(basename "${ko%%.ko*}").ko
    case $ko in
        *.ko.xz) chroot "$rootfs" sh -c 'xz -dc "$1" > "$2"' sh "$ko" "$dest" ;;
        *.ko) cp "$rootfs$ko" "$rootfs$dest" ;;
        *) echo "vm image: cannot unpack module $ko" >&2; exit 1 ;;
    esac
done
install -m 0755 "$here/initramfs-init" "$stage/init"
chroot "$rootfs" sh -c 'cd /tmp/initramfs && find . | cpio -o -H newc --quiet' | gzip -1 > "$out/initrd.img"
chmod 0644 "$out/initrd.img"
rm -rf "$stage"

# Apt's downloaded packages are not needed to boot.
rm -rf "$rootfs/var/cache/apt/archives"/*.deb "$rootfs/var/lib/apt/lists"/*_Packages
# Room for what the checks write (the disk is a QEMU snapshot: the image
# itself never changes).
used_mib=$(du -sm "$rootfs" | cut -f1)
size_mib=$((used_mib + used_mib / 4 + 512))
say "rootfs.img: ${used_mib} MiB used, ${size_mib} MiB image"
mkfs.ext4 -q -L unitgate-vm -d "$rootfs" "$out/rootfs.img" "${size_mib}M"
chmod 0644 "$out/rootfs.img"
rm -rf "$rootfs"
say "done"
