//! Shared by the helper's integration tests.

/// Root-only tests skip for an unprivileged developer, never in CI.
pub fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    assert!(
        root || std::env::var_os("CI").is_none(),
        "this test needs root; CI must run the suite as root"
    );
    if !root {
        eprintln!("skipped: needs root");
    }
    root
}
