#!/bin/bash
# Installs the Debian packages the test bed and the end-to-end tests need —
# systemd-nspawn, sudo, debootstrap (the test bed builds its Debian 13 image
# with it), and everything listed in deploy/test-deps.txt — when any is
# missing. Needs root to install.
set -euo pipefail
cd "$(dirname "$0")/.."

wanted=(systemd-container sudo debootstrap)
if [ -f deploy/test-deps.txt ]; then
    mapfile -t extra < <(grep -v '^\s*\(#\|$\)' deploy/test-deps.txt)
    wanted+=("${extra[@]}")
fi
missing=()
for pkg in "${wanted[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages present: ${wanted[*]}"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages ${missing[*]}, and not root to install them" >&2
    exit 1
fi
echo "installing ${missing[*]}"
# No service of these packages starts on the host (openssh-server's sshd is
# for the test machines alone): a policy-rc.d that denies every start, for
# the install only, where the host has none of its own.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Not at the host's next boot either, where systemd runs it.
if [ -d /run/systemd/system ] && printf '%s\n' "${missing[@]}" | grep -qx openssh-server; then
    systemctl disable --now ssh.service ssh.socket 2>/dev/null || true
fi
