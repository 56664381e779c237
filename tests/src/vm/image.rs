//! The VM tier's guest image: built from Debian packages by
//! `tests/vm/image/build.sh` the first time a test needs it, then cached.
//!
//! Layout (everything root's; the cache root 0700, so no other account can
//! reach, let alone replace, what QEMU boots):
//!
//! ```text
//! /var/tmp/unitgate-vm/                 root 0700
//!   images/<key>.lock                   flock: shared while a boot uses <key>,
//!                                       exclusive while it is built or pruned
//!   images/<key>/                       vmlinuz, initrd.img, rootfs.img, packages, build.log
//!   images/<key>.building.<pid>/        a build in progress (renamed into place when done)
//! ```
//!
//! `<key>` is a hash of every file of the recipe directory (the build script,
//! its package list, the guest agent unit), so changing any of them builds a
//! new image and two checkouts with different recipes never share one. A
//! build happens under the exclusive lock into a temporary directory that is
//! renamed into place only once complete, so a reader never sees half an
//! image and two builds never race. Before an image is used, every path from
//! `/` to each of its files is checked: root-owned, nobody else may write
//! (sticky directories such as `/var/tmp` aside), no links. An image nobody
//! used for [`PRUNE_AFTER`] is removed by the next run, unless in use.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Where the cache lives: not under /tmp (often a small tmpfs) and shared by
/// every checkout on the machine, so an image is built once per recipe.
pub const CACHE_ROOT: &str = "/var/tmp/unitgate-vm";

/// A cold build took 3 min 16 s on a loaded 2-core machine with a nearby
/// mirror; this bounds a stuck download or a hung maintainer script.
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// An image unused this long is removed by the next run (if not in use).
const PRUNE_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);

/// The files a built image consists of, all checked before a boot.
pub const IMAGE_FILES: [&str; 3] = ["vmlinuz", "initrd.img", "rootfs.img"];

/// Where an image comes from and where it is kept.
#[derive(Debug, Clone)]
pub struct ImageCache {
    root: PathBuf,
    recipe: PathBuf,
}

/// A verified image, in use: the shared lock held by this value keeps it
/// from being pruned or rebuilt until it is dropped.
#[derive(Debug)]
pub struct Image {
    dir: PathBuf,
    key: String,
    built: Option<Duration>,
    _in_use: Flock,
}

impl Image {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// How long building it took, when this call built it (`None`: cached).
    pub fn built_in(&self) -> Option<Duration> {
        self.built
    }
}

impl ImageCache {
    /// The test bed's own image: the recipe in `tests/vm/image/` (of the test
    /// bed, never of a checkout under test), cached under [`CACHE_ROOT`].
    pub fn standard() -> ImageCache {
        ImageCache::new(
            Path::new(CACHE_ROOT),
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("vm/image"),
        )
    }

    /// A cache at `root` for the recipe directory `recipe` (which holds a
    /// `build.sh` taking the output directory as its one argument).
    pub fn new(root: &Path, recipe: &Path) -> ImageCache {
        ImageCache {
            root: root.to_path_buf(),
            recipe: recipe.to_path_buf(),
        }
    }

    /// The recipe's cache key: a hash of each of its files' names and bytes.
    pub fn key(&self) -> String {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.recipe)
            .unwrap_or_else(|e| panic!("read VM image recipe {}: {e}", self.recipe.display()))
            .map(|entry| entry.expect("read recipe entry").path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        let mut stream = Vec::new();
        for file in &files {
            let bytes = std::fs::read(file).expect("read recipe file");
            let name = file.file_name().expect("file name").as_bytes();
            stream.extend_from_slice(name);
            stream.push(0);
            stream.extend_from_slice(bytes.len().to_string().as_bytes());
            stream.push(0);
            stream.extend_from_slice(&bytes);
        }
        let digest = sha256_hex(&stream);
        digest[..16].to_owned()
    }

    /// The image for this recipe: the cached one if there is one (checked),
    /// else built now under the recipe's exclusive lock. Panics with the
    /// reason (a build failure with its log's tail, a cache another account
    /// could have written) — the VM tier fails, it never skips.
    pub fn ensure(&self) -> Image {
        let key = self.key();
        let images = self.images_dir();
        let dir = images.join(&key);
        let lock = Flock::open(&images.join(format!("{key}.lock")));

        lock.lock(libc::LOCK_SH);
        let built = if dir.exists() {
            None
        } else {
            lock.unlock();
            lock.lock(libc::LOCK_EX);
            // Another process may have built it while we waited.
            let built = (!dir.exists()).then(|| self.build(&key, &dir));
            // Stamped before the lock turns shared, which may drop it for an
            // instant: a pruner takes only images unused for days.
            self.mark_used(&dir);
            lock.lock(libc::LOCK_SH);
            built
        };
        check_tree_is_roots(&dir);
        self.mark_used(&dir);
        self.prune_unused(&key);
        Image {
            dir,
            key,
            built,
            _in_use: lock,
        }
    }

    /// `<root>/images`, created (root, 0700 at the root) and checked.
    fn images_dir(&self) -> PathBuf {
        preflight_root();
        check_ancestors_are_roots(&self.root);
        make_private_dir(&self.root);
        let images = self.root.join("images");
        make_private_dir(&images);
        images
    }

    /// Runs the recipe into `<key>.building.<pid>` and renames it to `dir`.
    /// Called with the recipe's exclusive lock held, so any other
    /// `.building.` directory of this key is a dead build's leftover.
    fn build(&self, key: &str, dir: &Path) -> Duration {
        let images = dir.parent().expect("image dir has a parent");
        remove_dead_builds(images, key);
        let tmp = images.join(format!("{key}.building.{}", std::process::id()));
        make_private_dir(&tmp);
        let log_path = tmp.join("build.log");
        let log = std::fs::File::create(&log_path).expect("create build log");
        eprintln!(
            "vm image: building {key} from {} (a cold build downloads Debian packages; \
             log: {})",
            self.recipe.display(),
            log_path.display()
        );
        let began = Instant::now();
        let mut cmd = Command::new("sh");
        cmd.arg(self.recipe.join("build.sh"))
            .arg(&tmp)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        // build.sh runs itself in a pid namespace whose init dies with it,
        // so this ends the whole build if the test process dies.
        super::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().expect("spawn the VM image build");
        let finished = wait_with_deadline(&mut child, BUILD_TIMEOUT);
        let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let ok = match finished {
            Some(status) => status.success(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                false
            }
        };
        let complete = IMAGE_FILES.iter().all(|f| tmp.join(f).is_file());
        if !ok || !complete {
            let _ = std::fs::remove_dir_all(&tmp);
            panic!(
                "building the VM image failed ({}; {}): last lines of its log:\n{}",
                match finished {
                    Some(status) => format!("build.sh {status}"),
                    None => format!("no result within {BUILD_TIMEOUT:?}, killed"),
                },
                if complete {
                    "all files made"
                } else {
                    "files missing"
                },
                tail(&log_text, 40)
            );
        }
        std::fs::rename(&tmp, dir).expect("rename the built image into place");
        let took = began.elapsed();
        eprintln!("vm image: built {key} in {:.0?}", took);
        took
    }

    /// Touches `last-used` (never through a link: it may run before the
    /// tree is checked).
    fn mark_used(&self, dir: &Path) {
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(dir.join("last-used"))
            .expect("touch last-used");
    }

    /// Removes other recipes' images nobody used for [`PRUNE_AFTER`] and
    /// nobody is using now (their lock is free).
    fn prune_unused(&self, keep: &str) {
        let images = self.root.join("images");
        let Ok(entries) = std::fs::read_dir(&images) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(key) = name.strip_suffix(".lock") else {
                continue;
            };
            if key == keep {
                continue;
            }
            let dir = images.join(key);
            let last_used = std::fs::metadata(dir.join("last-used"))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let idle = SystemTime::now()
                .duration_since(last_used)
                .unwrap_or_default();
            if idle < PRUNE_AFTER {
                continue;
            }
            // The lock file stays: a process may be waiting on it, and a
            // new file under the same name would let two builds run at once.
            let lock = Flock::open(&entry.path());
            if lock.try_lock(libc::LOCK_EX) {
                let _ = std::fs::remove_dir_all(&dir);
                remove_dead_builds(&images, key);
            }
        }
    }
}

/// Temporary directories of builds of `key` whose builder is gone.
fn remove_dead_builds(images: &Path, key: &str) {
    let prefix = format!("{key}.building.");
    for entry in std::fs::read_dir(images).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The VM tier builds and boots as root; it fails without.
fn preflight_root() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert!(
        euid == 0,
        "the VM tier must run as root (it builds a root filesystem with debootstrap \
         and boots it with QEMU); run the README's test command as root"
    );
}

/// Creates `dir` (mode 0700) unless it exists, then insists it is a real
/// directory of root's that nobody else can enter. An existing directory
/// that fails the check is refused, never repaired: another account could
/// already have put something in it.
pub fn make_private_dir(dir: &Path) {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => panic!("create {}: {e}", dir.display()),
    }
    let meta =
        std::fs::symlink_metadata(dir).unwrap_or_else(|e| panic!("lstat {}: {e}", dir.display()));
    assert!(
        meta.is_dir() && meta.uid() == 0 && meta.mode() & 0o077 == 0,
        "{} must be a directory owned by root with mode 0700 (it is {}, uid {}, mode {:o}): \
         another account may have created or opened it, so the VM tier will not use it; \
         remove it as root and run again",
        dir.display(),
        file_kind(&meta),
        meta.uid(),
        meta.mode() & 0o7777
    );
}

/// Every directory from `/` down to `path`'s parent is root's and not
/// writable by anyone else, except sticky ones (`/var/tmp`), where nobody
/// else can rename or remove an entry of root's. Symbolic links on the way
/// must be root's too, and their targets are checked the same way.
pub fn check_ancestors_are_roots(path: &Path) {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let mut walked = PathBuf::new();
    for part in parent.components() {
        walked.push(part);
        let meta = std::fs::symlink_metadata(&walked)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", walked.display()));
        assert!(
            meta.uid() == 0,
            "{} is owned by uid {}, not root: the VM tier keeps its images below it and \
             will not trust it",
            walked.display(),
            meta.uid()
        );
        if meta.file_type().is_symlink() {
            let target = std::fs::canonicalize(&walked).expect("resolve link");
            check_ancestors_are_roots(&target.join("x"));
            continue;
        }
        let others_may_write = meta.mode() & 0o022 != 0;
        let sticky = meta.mode() & 0o1000 != 0;
        assert!(
            meta.is_dir() && (!others_may_write || sticky),
            "{} is writable by accounts other than root (mode {:o}): the VM tier keeps its \
             images below it and will not trust it",
            walked.display(),
            meta.mode() & 0o7777
        );
    }
}

/// Every entry below `dir` (and `dir`) is a directory or a single-link
/// regular file, root's, writable by root alone: what QEMU boots is exactly
/// what a root build put there.
pub fn check_tree_is_roots(dir: &Path) {
    let meta =
        std::fs::symlink_metadata(dir).unwrap_or_else(|e| panic!("lstat {}: {e}", dir.display()));
    check_roots_only(dir, &meta);
    if meta.is_dir() {
        for entry in std::fs::read_dir(dir).expect("read image dir").flatten() {
            check_tree_is_roots(&entry.path());
        }
    }
}

fn check_roots_only(path: &Path, meta: &std::fs::Metadata) {
    let plain = meta.is_dir() || (meta.is_file() && meta.nlink() == 1);
    assert!(
        plain && meta.uid() == 0 && meta.mode() & 0o022 == 0,
        "VM image file {} is not root's alone ({}, uid {}, mode {:o}, {} links): refusing to \
         boot an image another account could have changed; remove {} as root to rebuild it",
        path.display(),
        file_kind(meta),
        meta.uid(),
        meta.mode() & 0o7777,
        meta.nlink(),
        path.display()
    );
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// SHA-256 of `bytes` in hex, by coreutils' `sha256sum` (the test bed has no
/// hashing crate, and this runs once per boot on a few kilobytes).
fn sha256_hex(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run sha256sum");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(bytes)
        .expect("feed sha256sum");
    let mut out = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut out)
        .expect("read sha256sum");
    assert!(child.wait().expect("wait sha256sum").success());
    out.split_whitespace().next().expect("a digest").to_owned()
}

/// Waits for `child` until `limit`; `None` if it is still running then.
fn wait_with_deadline(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The last `n` lines of `text`.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// An flock(2) on a lock file in a directory of root's (created 0600, never
/// through a link). Released when dropped (the descriptor closes).
#[derive(Debug)]
pub(crate) struct Flock {
    fd: std::fs::File,
}

impl Flock {
    pub(crate) fn open(path: &Path) -> Flock {
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .unwrap_or_else(|e| panic!("open lock {}: {e}", path.display()));
        let meta = fd.metadata().expect("fstat lock");
        assert!(
            meta.is_file() && meta.uid() == 0,
            "lock {} is not a regular file of root's",
            path.display()
        );
        fd.set_permissions(std::fs::Permissions::from_mode(0o600))
            .expect("chmod lock");
        Flock { fd }
    }

    /// Blocks until the lock is held in `mode` (LOCK_SH or LOCK_EX;
    /// converting a held lock is allowed).
    pub(crate) fn lock(&self, mode: libc::c_int) {
        use std::os::fd::AsRawFd;
        loop {
            // SAFETY: a valid descriptor we own; flock has no other input.
            if unsafe { libc::flock(self.fd.as_raw_fd(), mode) } == 0 {
                return;
            }
            let err = std::io::Error::last_os_error();
            assert!(
                err.kind() == std::io::ErrorKind::Interrupted,
                "flock: {err}"
            );
        }
    }

    pub(crate) fn try_lock(&self, mode: libc::c_int) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: as in `lock`.
        unsafe { libc::flock(self.fd.as_raw_fd(), mode | libc::LOCK_NB) == 0 }
    }

    pub(crate) fn unlock(&self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as in `lock`.
        unsafe { libc::flock(self.fd.as_raw_fd(), libc::LOCK_UN) };
    }
}
