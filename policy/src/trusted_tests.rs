use super::*;
use crate::testutil::{chown, is_root, set_mode, TempTree};

const LIMIT: u64 = 64 * 1024;

/// A tree with a good `apps/x.toml`; `None` when not root (test skipped).
fn tree() -> Option<TempTree> {
    if !is_root() {
        return None;
    }
    let t = TempTree::new();
    t.dir("apps", 0o755);
    t.file("apps/x.toml", b"unit = 'x@.service'\n", 0o644);
    Some(t)
}

fn read(t: &TempTree, rel: &str) -> Result<Vec<u8>, Error> {
    read_trusted(&t.root, Path::new(rel), LIMIT)
}

fn insecure(t: &TempTree, rel: &str, why: &str) {
    match read(t, rel) {
        Err(e @ Error::Insecure { .. }) => {
            assert!(e.to_string().contains(why), "{} does not say {why}", e);
        }
        other => panic!("{rel}: expected insecure ({why}), got {other:?}"),
    }
}

#[test]
fn reads_a_secure_file() {
    let Some(t) = tree() else { return };
    assert_eq!(read(&t, "apps/x.toml").unwrap(), b"unit = 'x@.service'\n");
    set_mode(&t.path("apps/x.toml"), 0o600);
    assert!(read(&t, "apps/x.toml").is_ok());
}

#[test]
fn missing_file_is_not_found() {
    let Some(t) = tree() else { return };
    assert!(matches!(read(&t, "apps/y.toml"), Err(Error::NotFound(_))));
    assert!(matches!(read(&t, "nope/y.toml"), Err(Error::NotFound(_))));
}

#[test]
fn writable_or_foreign_directories_are_refused() {
    let Some(t) = tree() else { return };
    set_mode(&t.path("apps"), 0o775);
    insecure(&t, "apps/x.toml", "group-writable (mode 0775)");
    set_mode(&t.path("apps"), 0o1777);
    insecure(&t, "apps/x.toml", "world-writable");
    set_mode(&t.path("apps"), 0o755);
    chown(&t.path("apps"), 1);
    insecure(&t, "apps/x.toml", "owned by uid 1, not root");
}

#[test]
fn the_trusted_root_itself_is_checked() {
    let Some(t) = tree() else { return };
    set_mode(&t.root, 0o777);
    insecure(&t, "apps/x.toml", "world-writable");
}

#[test]
fn writable_or_foreign_files_are_refused() {
    let Some(t) = tree() else { return };
    let f = t.path("apps/x.toml");
    set_mode(&f, 0o666);
    insecure(&t, "apps/x.toml", "world-writable");
    set_mode(&f, 0o664);
    insecure(&t, "apps/x.toml", "group-writable");
    set_mode(&f, 0o644);
    chown(&f, 1);
    insecure(&t, "apps/x.toml", "owned by uid 1");
}

#[test]
fn symlink_to_an_insecure_place_is_refused() {
    let Some(t) = tree() else { return };
    // A root-owned file inside a caller-owned directory: the directory fails.
    t.dir("home/ops", 0o755);
    t.file("home/ops/evil.toml", b"", 0o644);
    chown(&t.path("home/ops"), 1000);
    std::fs::remove_file(t.path("apps/x.toml")).unwrap();
    t.link("apps/x.toml", "/home/ops/evil.toml");
    insecure(&t, "apps/x.toml", "owned by uid 1000");
    // The same through a relative link.
    std::fs::remove_file(t.path("apps/x.toml")).unwrap();
    t.link("apps/x.toml", "../home/ops/evil.toml");
    insecure(&t, "apps/x.toml", "owned by uid 1000");
    // A caller-owned file in a good directory.
    t.dir("good", 0o755);
    t.file("good/evil.toml", b"", 0o644);
    chown(&t.path("good/evil.toml"), 1000);
    std::fs::remove_file(t.path("apps/x.toml")).unwrap();
    t.link("apps/x.toml", "/good/evil.toml");
    insecure(&t, "apps/x.toml", "owned by uid 1000");
}

#[test]
fn symlink_chains_to_a_secure_file_work() {
    let Some(t) = tree() else { return };
    t.dir("real/deep", 0o755);
    t.file("real/deep/p.toml", b"ok", 0o644);
    t.link("real/link1", "deep/p.toml");
    t.link("apps/y.toml", "/real/link1");
    t.link("dirlink", "real");
    assert_eq!(read(&t, "apps/y.toml").unwrap(), b"ok");
    assert_eq!(read(&t, "dirlink/deep/p.toml").unwrap(), b"ok");
    // `..` never climbs above the trusted root.
    t.link("apps/z.toml", "../../../../real/deep/p.toml");
    assert_eq!(read(&t, "apps/z.toml").unwrap(), b"ok");
}

#[test]
fn symlink_loops_are_refused() {
    let Some(t) = tree() else { return };
    t.link("apps/a.toml", "b.toml");
    t.link("apps/b.toml", "a.toml");
    insecure(&t, "apps/a.toml", "more than 40 symbolic links");
    t.link("apps/self", "self");
    insecure(&t, "apps/self/x.toml", "more than 40 symbolic links");
}

#[test]
fn wrong_file_types_are_refused() {
    let Some(t) = tree() else { return };
    t.dir("apps/d.toml", 0o755);
    insecure(&t, "apps/d.toml", "is a directory");
    nix::unistd::mkfifo(&t.path("apps/f.toml"), Mode::from_bits_truncate(0o644)).unwrap();
    insecure(&t, "apps/f.toml", "not a regular file");
    insecure(&t, "apps/x.toml/y", "not a directory");
}

#[test]
fn oversize_files_are_refused() {
    let Some(t) = tree() else { return };
    t.file("apps/big.toml", &vec![b'#'; LIMIT as usize + 1], 0o644);
    insecure(&t, "apps/big.toml", "more than the 65536 allowed");
    t.file("apps/max.toml", &vec![b'#'; LIMIT as usize], 0o644);
    assert!(read(&t, "apps/max.toml").is_ok());
}
