//! The Debian package of the checkout under test, for the suites that
//! install it in a machine: built by `deploy/deb/build-deb.sh` once per test
//! binary, into a directory of the target dir that machines see at
//! `/mnt/target`, and a throw-away writable `/usr` for dpkg.

use std::process::Command;

use crate::paths;

/// dpkg writes to /usr, which is the host's and read-only in a machine: a
/// tmpfs overlay on it first.
pub const WRITABLE_USR: &str = "set -e; mkdir -p /run/usr-rw; mount -t tmpfs tmpfs /run/usr-rw; \
    mkdir /run/usr-rw/upper /run/usr-rw/work; \
    mount -t overlay overlay -o lowerdir=/usr,upperdir=/run/usr-rw/upper,workdir=/run/usr-rw/work /usr";

/// Builds the package into `<target>/<dir>/` and returns its path inside a
/// machine. Each suite names its own `dir`, so two never overwrite each
/// other's package; call it once per binary (e.g. behind a `OnceLock`).
pub fn build(dir: &str) -> String {
    paths::require_release_binaries();
    let out_dir = paths::target_dir().join(dir);
    let out = Command::new("sh")
        .arg(paths::checkout().join("deploy/deb/build-deb.sh"))
        .arg(&out_dir)
        .env("CARGO_TARGET_DIR", paths::target_dir())
        .output()
        .expect("run build-deb.sh");
    assert!(
        out.status.success(),
        "build-deb.sh failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .last()
        .expect("build-deb.sh prints the package's path");
    let name = path.rsplit('/').next().unwrap_or_default();
    format!("/mnt/target/{dir}/{name}")
}
