//! Where the checkout and the built binaries are.
//!
//! `CARGO_BIN_EXE_*` only names binaries of the same package, and the
//! binaries under test belong to `helper/` and `ctl/`, so we derive the
//! target directory from the test executable itself
//! (`<target>/<profile>/deps/<test>-<hash>`).

use std::path::{Path, PathBuf};

/// Points the test bed at another checkout (its scripts and its
/// `target/release` binaries) than the one the tests were built from, to
/// show a new test failing on older code:
/// `UNITGATE_UNDER_TEST=/path/to/old-checkout cargo test --test NAME`.
pub const UNDER_TEST_ENV: &str = "UNITGATE_UNDER_TEST";

/// The root of the checkout under test (the workspace directory).
pub fn checkout() -> PathBuf {
    if let Some(dir) = std::env::var_os(UNDER_TEST_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory holding the binaries under test: the one the
/// running test (or test-bed binary such as `sandbox-demo`) was built into,
/// or `<checkout>/target` under [`UNDER_TEST_ENV`].
pub fn target_dir() -> PathBuf {
    if std::env::var_os(UNDER_TEST_ENV).is_some_and(|d| !d.is_empty()) {
        return checkout().join("target");
    }
    profile_dir()
        .parent()
        .expect("a profile directory sits in the target directory")
        .to_path_buf()
}

/// `<target>/<profile>`: tests live in its `deps/`, binaries in it directly.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("executable has a directory");
    let dir = if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent")
    } else {
        dir
    };
    dir.to_path_buf()
}

/// The release binaries the installer installs (built by
/// `cargo build --release`, as the README's test command does first).
pub fn release_dir() -> PathBuf {
    target_dir().join("release")
}

/// Path of a binary in the profile the tests were built with (for host-side
/// tests that need no container).
pub fn profile_bin(name: &str) -> PathBuf {
    profile_dir().join(name)
}

/// Panics with an actionable message unless the release binaries exist.
pub fn require_release_binaries() {
    for bin in ["unitgate", "unitgate-systemctl"] {
        let path = release_dir().join(bin);
        assert!(
            path.is_file(),
            "{} is missing: run `cargo build --release` before the end-to-end tests \
             (the README's test command does this)",
            path.display()
        );
    }
}
