//! The cached Debian 13 (trixie) root filesystems the test bed boots for
//! [`Os::Trixie`](crate::os::Os) and its sudo-rs variant.
//!
//! `tests/os/build-image.sh` builds both trees with debootstrap (about a
//! minute and 350 MB); the test bed keeps them under [`CACHE_DIR`], in a
//! directory named after a hash of the build script and the package list,
//! so changing either builds a new image and an unchanged one is reused by
//! every later test binary and run.
//!
//! Root boots these trees and runs everything in them as root, so no other
//! account may be able to change them (the rule of docs/helper.md): the
//! cache directory is root's, mode 0700, checked (never repaired) before
//! every use, which keeps every other account out of everything below it.
//! A build happens under an exclusive lock on a file inside it, so two test
//! binaries never build at once, into a temporary directory that is renamed
//! into place only when complete: a half-built tree is never booted.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::paths;

/// Where built images live. Not under /tmp (often tmpfs, and cleared on
/// reboot): an image is built once and reused across runs.
pub const CACHE_DIR: &str = "/var/tmp/unitgate-images";

/// The build script and the package list, relative to the checkout: their
/// contents name the image.
const BUILD_SCRIPT: &str = "tests/os/build-image.sh";
const PACKAGE_LIST: &str = "tests/os/trixie.packages";

/// The two trees one build produces (`DEST/sudo`, `DEST/sudo-rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    Sudo,
    SudoRs,
}

impl Variant {
    fn dir_name(self) -> &'static str {
        match self {
            Variant::Sudo => "sudo",
            Variant::SudoRs => "sudo-rs",
        }
    }
}

/// The root directory of a trixie tree, built first if the cache has none
/// for the current build script and package list. Checked on every call.
pub fn trixie_root(variant: Variant) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let image = BUILT.get_or_init(ensure_trixie_image);
    let root = image.join(variant.dir_name());
    if let Err(why) = check_trusted(Path::new(CACHE_DIR), 0o077)
        .and_then(|()| check_trusted(image, 0o022))
        .and_then(|()| check_trusted(&root, 0o022))
    {
        panic!("refusing to boot {}: {why}", root.display());
    }
    root
}

/// `<CACHE_DIR>/trixie-<hash>`, built if missing.
fn ensure_trixie_image() -> PathBuf {
    let cache = open_cache_dir();
    let name = format!("trixie-{}", image_hash());
    let image = cache.join(&name);
    let _lock = BuildLock::take(&cache.join(".lock"));
    if !image.exists() {
        build(&cache, &name);
    }
    remove_unused_images(&cache, &name);
    image
}

/// A hash of what defines the image (FNV-1a over the build script and the
/// package list): not a security measure, only a name that changes with
/// either file. The cache's ownership is what keeps the tree trusted.
fn image_hash() -> String {
    let inputs: Vec<(&str, Vec<u8>)> = [BUILD_SCRIPT, PACKAGE_LIST]
        .into_iter()
        .map(|file| {
            let path = paths::checkout().join(file);
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            (file, bytes)
        })
        .collect();
    hash_inputs(&inputs)
}

/// FNV-1a over each input's name, a NUL and its contents, in order.
fn hash_inputs(inputs: &[(&str, Vec<u8>)]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (name, bytes) in inputs {
        for byte in name.as_bytes().iter().chain(&[0]).chain(bytes) {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// Creates the cache directory (root's, 0700) if it does not exist, and
/// checks it either way: one that another account made first, or made
/// accessible, is refused with the fix, never chmodded or removed by root.
fn open_cache_dir() -> PathBuf {
    let cache = PathBuf::from(CACHE_DIR);
    let parent = cache.parent().expect("the cache has a parent");
    if let Err(why) = check_sticky_or_private(parent) {
        panic!(
            "refusing to keep test images in {}: {why}",
            parent.display()
        );
    }
    match std::fs::DirBuilder::new().mode(0o700).create(&cache) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("cannot create {}: {e}", cache.display()),
    }
    if let Err(why) = check_trusted(&cache, 0o077) {
        panic!(
            "refusing the image cache {}: {why} (it must be a directory of root's, mode 0700; \
             if you did not make it so, inspect it, then remove it and the next run rebuilds it)",
            cache.display()
        );
    }
    cache
}

/// Ok when `path` itself (not a link to it) is a directory of root's with
/// none of the mode bits in `forbidden`: `0o077` for a directory nobody
/// else may enter, `0o022` for one nobody else may change.
pub fn check_trusted(path: &Path, forbidden: u32) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot stat it: {e}"))?;
    if !meta.file_type().is_dir() {
        return Err("it is not a directory (a link, or another file type)".into());
    }
    if meta.uid() != 0 {
        return Err(format!("it belongs to uid {}, not root", meta.uid()));
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & forbidden != 0 {
        return Err(format!(
            "its mode is {mode:04o}: others may {}",
            if forbidden & 0o055 != 0 {
                "enter it"
            } else {
                "change it"
            }
        ));
    }
    Ok(())
}

/// The cache's parent (/var/tmp) must be root's and, if others may write
/// in it, sticky: then nobody else can rename or remove root's entry in it
/// between the check and the use.
fn check_sticky_or_private(path: &Path) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("cannot stat it: {e}"))?;
    let mode = meta.permissions().mode();
    if !meta.file_type().is_dir() || meta.uid() != 0 {
        return Err("it is not a directory of root's".into());
    }
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(format!(
            "its mode is {:04o}: writable by others and not sticky",
            mode & 0o7777
        ));
    }
    Ok(())
}

/// An exclusive `flock` on the cache's lock file, released on drop (and by
/// the kernel if the process dies mid-build).
struct BuildLock {
    _file: std::fs::File,
}

impl BuildLock {
    fn take(path: &Path) -> BuildLock {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own; it blocks until the other
        // builder (a test binary building the same image) is done.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            panic!(
                "flock {}: {}",
                path.display(),
                std::io::Error::last_os_error()
            );
        }
        BuildLock { _file: file }
    }
}

/// Runs the build script into `.build-<name>` and renames the result to
/// `<name>`. The lock is held, so any `.build-*` left over is from a
/// builder that died and is removed first.
fn build(cache: &Path, name: &str) {
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if entry.file_name().as_bytes().starts_with(b".build-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let temp = cache.join(format!(".build-{name}"));
    let log_path = cache.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
    eprintln!(
        "testbed: building the Debian 13 image {} (debootstrap, about a minute; log {})",
        cache.join(name).display(),
        log_path.display()
    );
    let status = Command::new("sh")
        .arg(paths::checkout().join(BUILD_SCRIPT))
        .arg(&temp)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {BUILD_SCRIPT}: {e}"));
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        let _ = std::fs::remove_dir_all(&temp);
        panic!(
            "building the Debian 13 image failed ({status}; is debootstrap installed? \
             tests/install-deps.sh installs it); last lines of {}:\n{}",
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    std::fs::rename(&temp, cache.join(name))
        .unwrap_or_else(|e| panic!("cannot rename {} into place: {e}", temp.display()));
}

/// Images built from other versions of the script or list, unless a
/// running machine (an nspawn naming the tree) still uses one.
fn remove_unused_images(cache: &Path, current: &str) {
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("trixie-") || name == current || name.ends_with(".log") {
            continue;
        }
        let path = entry.path();
        if crate::machine::processes_mentioning(&path.to_string_lossy()).is_empty() {
            let _ = std::fs::remove_dir_all(&path);
            let _ = std::fs::remove_file(cache.join(format!("{name}.log")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{chown, symlink};

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ug-image-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        dir
    }

    /// Ownership checks need root (to make a directory another uid owns);
    /// the suite runs as root, and says so rather than passing vacuously.
    fn require_root() {
        // SAFETY: geteuid cannot fail.
        assert_eq!(unsafe { libc::geteuid() }, 0, "these tests run as root");
    }

    #[test]
    fn a_cache_another_account_could_use_is_refused() {
        require_root();
        let dir = temp_dir("trust");
        assert_eq!(check_trusted(&dir, 0o077), Ok(()));

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_trusted(&dir, 0o077).unwrap_err();
        assert!(err.contains("0755") && err.contains("enter"), "{err}");
        assert_eq!(
            check_trusted(&dir, 0o022),
            Ok(()),
            "0755 is fine for a tree"
        );

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o775)).unwrap();
        let err = check_trusted(&dir, 0o022).unwrap_err();
        assert!(err.contains("change"), "{err}");

        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        chown(&dir, Some(65534), None).unwrap();
        let err = check_trusted(&dir, 0o077).unwrap_err();
        assert!(err.contains("uid 65534"), "{err}");
        chown(&dir, Some(0), None).unwrap();

        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        symlink(&dir, &link).unwrap();
        let err = check_trusted(&link, 0o077).unwrap_err();
        assert!(err.contains("not a directory"), "{err}");

        std::fs::remove_file(&link).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_world_writable_parent_must_be_sticky() {
        require_root();
        let dir = temp_dir("sticky");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(check_sticky_or_private(&dir), Ok(()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_sticky_or_private(&dir).unwrap_err();
        assert!(err.contains("not sticky"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_image_name_follows_the_script_and_the_list() {
        let name = image_hash();
        assert_eq!(name.len(), 16);
        assert_eq!(name, image_hash(), "stable for unchanged inputs");
        // The image is rebuilt when its package list (or the script)
        // changes, because the name does: one package more, or a changed
        // script line, is another image.
        let script = b"debootstrap trixie\n".to_vec();
        let list = b"systemd\nsudo\n".to_vec();
        let base = hash_inputs(&[(BUILD_SCRIPT, script.clone()), (PACKAGE_LIST, list.clone())]);
        let more = [list.clone(), b"sudo-rs\n".to_vec()].concat();
        for (what, changed) in [
            (
                "a package added",
                vec![(BUILD_SCRIPT, script.clone()), (PACKAGE_LIST, more)],
            ),
            (
                "the script edited",
                vec![
                    (BUILD_SCRIPT, b"debootstrap sid\n".to_vec()),
                    (PACKAGE_LIST, list.clone()),
                ],
            ),
            // Bytes moved from one file to the other are still a change.
            (
                "a line moved between the files",
                vec![
                    (
                        BUILD_SCRIPT,
                        [script.clone(), b"systemd\n".to_vec()].concat(),
                    ),
                    (PACKAGE_LIST, b"sudo\n".to_vec()),
                ],
            ),
        ] {
            assert_ne!(hash_inputs(&changed), base, "{what}");
        }
    }
}
