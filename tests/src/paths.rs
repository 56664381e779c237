//! Where the checkout and the built binaries are.
//!
//! `CARGO_BIN_EXE_*` only names binaries of the same package, and the
//! binaries under test belong to `helper/` and `ctl/`, so we derive the
//! target directory from the test executable itself
//! (`<target>/<profile>/deps/<test>-<hash>`).

use std::path::{Path, PathBuf};

/// The root of the checkout (the workspace directory).
pub fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The cargo target directory the running test (or test-bed binary such as
/// `sandbox-demo`) was built into.
pub fn target_dir() -> PathBuf {
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
