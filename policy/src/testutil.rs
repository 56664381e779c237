//! Test-only helpers: root-owned temporary trees for the secure-open and
//! lock tests. They live under /var/tmp, but the code under test is started
//! *at* the tree (as its trusted root), so the 1777 /var/tmp above it is
//! never traversed.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub struct TempTree {
    pub root: PathBuf,
}

/// Whether we can build root-owned trees. Tests needing them skip when a
/// developer runs them unprivileged, but never in CI (`CI` set), where a
/// skipped root test would be a silently missing proof.
pub fn is_root() -> bool {
    let root = nix::unistd::geteuid().is_root();
    assert!(
        root || std::env::var_os("CI").is_none(),
        "this test needs root; CI must run the suite as root"
    );
    if !root {
        eprintln!("skipped: needs root to build root-owned trees");
    }
    root
}

impl Default for TempTree {
    fn default() -> TempTree {
        TempTree::new()
    }
}

impl TempTree {
    pub fn new() -> TempTree {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let root = PathBuf::from(format!(
            "/var/tmp/unitgate-policy-test-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir(&root).unwrap();
        set_mode(&root, 0o755);
        TempTree { root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn dir(&self, rel: &str, mode: u32) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).unwrap();
        set_mode(&p, mode);
        p
    }

    pub fn file(&self, rel: &str, content: &[u8], mode: u32) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, content).unwrap();
        set_mode(&p, mode);
        p
    }

    pub fn link(&self, rel: &str, target: &str) {
        symlink(target, self.path(rel)).unwrap();
    }
}

impl Drop for TempTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

pub fn set_mode(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn chown(p: &Path, uid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), None).unwrap();
}
