//! Reaching a directory or program by path without trusting the path.
//!
//! The state directory, the skeleton and the install program are named by
//! the root-owned app config, but directories along those paths may belong
//! to a service account (`/var/lib/<app>` is the account's). A plain `open`
//! would follow whatever symbolic links the account planted there. The walk
//! opens one component at a time with `O_NOFOLLOW`, relative to the
//! directory before it, and follows a link only when the directory holding
//! it can be written by nobody but root and us: such a link was placed by
//! root or by ourselves. A link anywhere else is refused. Every directory
//! it passes through is recorded, so callers can ask who could have changed
//! what they reached ([`Walked::control`]).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, OFlag};
use nix::sys::stat::{fstat, mkdirat, FileStat, Mode, SFlag};
use nix::sys::statfs::{fstatfs, FUSE_SUPER_MAGIC};

use crate::dirfd::DirFd;
use crate::error::{Error, Result};

/// The kernel's own limit on links followed in one path resolution.
const MAX_LINKS: usize = 40;

const PROBE: OFlag = OFlag::O_PATH
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);
const DIR_READ: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// A directory the walk went through, and who could write it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    pub path: PathBuf,
    pub uid: u32,
    pub mode: u32,
    /// On a FUSE file system: its owner, any user who may mount one, makes
    /// up every owner and mode it reports, so none of them can be believed.
    pub fuse: bool,
}

impl Passed {
    /// Whether someone besides its owner could change it.
    fn others_can_change(&self) -> bool {
        self.mode & 0o022 != 0 || self.fuse
    }
}

/// Who, besides root, could have changed what the walk reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Every directory on the way is root's and writable by nobody else.
    Root,
    /// The topmost directory not owned by root belongs to `uid`, who can
    /// therefore replace anything below it.
    User { uid: u32, dir: PathBuf },
    /// A root-owned directory on the way is writable by a group or by
    /// everyone (like /tmp): no single account controls what is below it.
    Shared { dir: PathBuf },
    /// A directory on the way is on a FUSE file system, whose owner makes
    /// up every owner it reports: who controls it cannot be told.
    Fuse { dir: PathBuf },
}

/// The end of a walk: the opened object and every directory passed.
#[derive(Debug)]
pub struct Walked {
    pub fd: OwnedFd,
    pub stat: FileStat,
    pub passed: Vec<Passed>,
}

/// Who could have changed the end of a walk through `passed`.
pub fn control(passed: &[Passed]) -> Control {
    for p in passed {
        // Before the owner: a FUSE file system can claim anyone's.
        if p.fuse {
            return Control::Fuse {
                dir: p.path.clone(),
            };
        }
        if p.uid != 0 {
            return Control::User {
                uid: p.uid,
                dir: p.path.clone(),
            };
        }
        if p.others_can_change() {
            return Control::Shared {
                dir: p.path.clone(),
            };
        }
    }
    Control::Root
}

impl Walked {
    pub fn control(&self) -> Control {
        control(&self.passed)
    }

    pub fn is_dir(&self) -> bool {
        file_type(&self.stat) == SFlag::S_IFDIR
    }
}

/// A directory we may not read, saying whose it is and what would let us.
fn denied(path: &Path, st: &FileStat) -> Error {
    use nix::unistd::{Gid, Group, Uid, User};
    let user = User::from_uid(Uid::from_raw(st.st_uid))
        .ok()
        .flatten()
        .map_or_else(|| st.st_uid.to_string(), |u| u.name);
    let group = Group::from_gid(Gid::from_raw(st.st_gid))
        .ok()
        .flatten()
        .map_or_else(|| st.st_gid.to_string(), |g| g.name);
    Error::NotPermitted {
        what: format!(
            "cannot open {}: permission denied (it is {user}:{group}, mode {:04o})",
            path.display(),
            st.st_mode & 0o7777
        ),
        hint: format!(
            "run unitgate as {user}, or as a member of group {group} if it may read the directory (`usermod -aG {group} USER`, then log in again)"
        ),
    }
}

/// Whether `fd` is on a FUSE file system (an unreadable one counts as
/// FUSE: it cannot be believed either).
fn on_fuse(fd: &OwnedFd) -> bool {
    fstatfs(fd).map_or(true, |fs| fs.filesystem_type() == FUSE_SUPER_MAGIC)
}

pub fn file_type(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// What to do when a directory on the way does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Report it: [`open_dir`] returns `Ok(None)`.
    Absent,
    /// Create it with this mode (the umask applies).
    Create(u32),
}

/// Opens the directory at the absolute `path` for reading, walking it as
/// described above. `Ok(None)` when it (or a directory above it) is absent
/// and `missing` is [`Missing::Absent`].
pub fn open_dir(path: &Path, missing: Missing) -> Result<Option<(DirFd, Walked)>> {
    let Reached::Found(walked) = walk(path, missing, Want::Dir)? else {
        return Ok(None);
    };
    let fd = walked
        .fd
        .try_clone()
        .map_err(|e| Error::io_path("open", path, e))?;
    Ok(Some((DirFd::new(fd, path.to_owned()), walked)))
}

/// Reaches the file at the absolute `path` (an `O_PATH` descriptor), for
/// checks before running it. `Ok(None)` when it does not exist.
pub fn reach_file(path: &Path) -> Result<Option<Walked>> {
    Ok(match walk(path, Missing::Absent, Want::File)? {
        Reached::Found(w) => Some(w),
        Reached::Absent(_) | Reached::Decided(_) => None,
    })
}

/// Who could change what is at the absolute `path` (a directory, present
/// or not): judged by the directories down to it, or down to the deepest
/// one that exists. The walk ends at the first directory that decides it:
/// what is below is that account's, and may be closed to the caller.
pub fn control_of(path: &Path) -> Result<Control> {
    Ok(match walk(path, Missing::Absent, Want::Control)? {
        Reached::Found(w) => w.control(),
        Reached::Absent(passed) | Reached::Decided(passed) => control(&passed),
    })
}

/// A program that nobody but root and the caller can change: the file and
/// every directory on the way to it are owned by one of them and writable
/// by no group and nobody else. Anything else could be rewritten by another
/// account between two of our runs, and would run with our privileges.
pub fn check_program(path: &Path, what: &str) -> Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    let w = reach_file(path)?.ok_or_else(|| Error::Config {
        what: format!("{what} {} does not exist", path.display()),
        hint: "install it, or fix the app config".into(),
    })?;
    let file = Passed {
        path: path.to_owned(),
        uid: w.stat.st_uid,
        mode: w.stat.st_mode & 0o7777,
        fuse: on_fuse(&w.fd),
    };
    let writable = w
        .passed
        .iter()
        .chain(std::iter::once(&file))
        .find(|p| (p.uid != 0 && p.uid != euid) || p.others_can_change());
    if let Some(p) = writable {
        let by = if p.fuse {
            "on a FUSE file system, whose owners and modes mean nothing".to_owned()
        } else if p.uid != 0 && p.uid != euid {
            format!("owned by uid {}", p.uid)
        } else {
            format!("writable by its group or others (mode {:04o})", p.mode)
        };
        return Err(Error::NotPermitted {
            what: format!(
                "{what} {} is not safe to run: {} is {by}",
                path.display(),
                p.path.display()
            ),
            hint: "unitgate runs a program only if nobody but root and you can change it and the directories above it; an administrator can install it root-owned, e.g. under /usr/local/lib/unitgate/apps/APP/".into(),
        });
    }
    if file_type(&w.stat) != SFlag::S_IFREG || w.stat.st_mode & 0o111 == 0 {
        return Err(Error::Config {
            what: format!("{what} {} is not an executable file", path.display()),
            hint: "fix the app config or the program's mode".into(),
        });
    }
    Ok(())
}

enum Reached {
    Found(Walked),
    /// A component does not exist; the directories passed before it.
    Absent(Vec<Passed>),
    /// Who controls the path is known (`Want::Control`); the directories
    /// passed down to the one that decided it.
    Decided(Vec<Passed>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    Dir,
    File,
    /// Only who controls the path: no directory is opened for reading.
    Control,
}

fn walk(path: &Path, missing: Missing, want: Want) -> Result<Reached> {
    if !path.is_absolute() {
        return Err(Error::usage(
            format!("{} is not an absolute path", path.display()),
            "configure an absolute path",
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    let mut w = Walker {
        euid,
        path,
        stack: Vec::new(),
        pending: VecDeque::new(),
        passed: Vec::new(),
        links: 0,
    };
    w.push_root()?;
    w.queue(path.as_os_str());
    w.run(missing, want)
}

struct Walker<'a> {
    euid: u32,
    /// The path asked for, for messages.
    path: &'a Path,
    /// Open directories from `/` down to the current one, with their paths.
    stack: Vec<(OwnedFd, PathBuf)>,
    pending: VecDeque<OsString>,
    passed: Vec<Passed>,
    links: usize,
}

impl Walker<'_> {
    fn os(&self, at: &Path) -> impl Fn(Errno) -> Error + '_ {
        let at = at.to_owned();
        move |e| Error::io_path("open", &at, io::Error::from(e))
    }

    fn push_root(&mut self) -> Result<()> {
        let root = Path::new("/");
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.os(root))?;
        let st = fstat(&fd).map_err(self.os(root))?;
        self.record(root, &st, &fd);
        self.stack.clear();
        self.stack.push((fd, root.to_owned()));
        Ok(())
    }

    fn record(&mut self, path: &Path, st: &FileStat, fd: &OwnedFd) {
        self.passed.push(Passed {
            path: path.to_owned(),
            uid: st.st_uid,
            mode: st.st_mode & 0o7777,
            fuse: on_fuse(fd),
        });
    }

    /// Puts a path's components in front of what is still to walk; an
    /// absolute one starts again at `/`.
    fn queue(&mut self, p: &OsStr) {
        let parts: Vec<OsString> = Path::new(p)
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_owned()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        for part in parts.into_iter().rev() {
            self.pending.push_front(part);
        }
    }

    fn current(&self) -> &(OwnedFd, PathBuf) {
        self.stack.last().expect("the root stays on the stack")
    }

    fn run(&mut self, missing: Missing, want: Want) -> Result<Reached> {
        while let Some(name) = self.pending.pop_front() {
            if name == ".." {
                if self.stack.len() > 1 {
                    self.stack.pop();
                }
                continue;
            }
            let last = self.pending.is_empty();
            let here = self.current().1.join(&name);
            let probe = match openat(
                self.current().0.as_fd(),
                name.as_os_str(),
                PROBE,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => match missing {
                    Missing::Create(mode) if want == Want::Dir => {
                        self.create(&name, &here, mode)?;
                        self.pending.push_front(name);
                        continue;
                    }
                    _ => return Ok(Reached::Absent(std::mem::take(&mut self.passed))),
                },
                Err(Errno::EACCES) => {
                    // We may not search the directory we are in: say whose it is.
                    let (dir, dir_path) = self.current();
                    let st = fstat(dir).map_err(self.os(dir_path))?;
                    return Err(denied(dir_path, &st));
                }
                Err(e) => return Err(self.os(&here)(e)),
            };
            let st = fstat(&probe).map_err(self.os(&here))?;
            match file_type(&st) {
                SFlag::S_IFLNK => self.follow(&probe, &here)?,
                SFlag::S_IFDIR if last && want == Want::Dir => {
                    let dir = self.current().0.as_fd();
                    let fd = match openat(dir, name.as_os_str(), DIR_READ, Mode::empty()) {
                        Ok(fd) => fd,
                        Err(Errno::EACCES) => return Err(denied(&here, &st)),
                        Err(e) => return Err(self.os(&here)(e)),
                    };
                    let st = fstat(&fd).map_err(self.os(&here))?;
                    self.record(&here, &st, &fd);
                    return Ok(self.finish(fd, st));
                }
                SFlag::S_IFDIR => {
                    self.record(&here, &st, &probe);
                    if want == Want::Control && control(&self.passed) != Control::Root {
                        return Ok(Reached::Decided(std::mem::take(&mut self.passed)));
                    }
                    self.stack.push((probe, here));
                }
                _ if last && want == Want::File => return Ok(self.finish(probe, st)),
                _ => {
                    return Err(Error::Insecure {
                        what: format!("{} is not a directory", here.display()),
                        hint: format!("{} must lead to a real directory", self.path.display()),
                    })
                }
            }
        }
        if want == Want::Control {
            return Ok(Reached::Decided(std::mem::take(&mut self.passed)));
        }
        Err(Error::Insecure {
            what: format!("{} is a directory, not a program", self.path.display()),
            hint: "configure the program's own path".into(),
        })
    }

    fn finish(&mut self, fd: OwnedFd, stat: FileStat) -> Reached {
        Reached::Found(Walked {
            fd,
            stat,
            passed: std::mem::take(&mut self.passed),
        })
    }

    fn create(&mut self, name: &OsStr, here: &Path, mode: u32) -> Result<()> {
        match mkdirat(
            self.current().0.as_fd(),
            name,
            Mode::from_bits_truncate(mode),
        ) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(Errno::EROFS) => Err(Error::io_path(
                "create",
                here,
                io::Error::from(Errno::EROFS),
            )),
            Err(Errno::EACCES | Errno::EPERM) => Err(Error::NotPermitted {
                what: format!("{} does not exist and cannot be created", here.display()),
                hint: "ask an administrator to create it, owned by the app's service account"
                    .into(),
            }),
            Err(e) => Err(Error::io_path("create", here, io::Error::from(e))),
        }
    }

    /// A link is followed only from a directory writable by nobody but
    /// root and us (checked on the directory we actually hold open).
    fn follow(&mut self, link: &OwnedFd, here: &Path) -> Result<()> {
        let (dir, dir_path) = self.current();
        let st = fstat(dir).map_err(self.os(dir_path))?;
        let trusted =
            (st.st_uid == 0 || st.st_uid == self.euid) && st.st_mode & 0o022 == 0 && !on_fuse(dir);
        if !trusted {
            return Err(Error::Insecure {
                what: format!(
                    "{} is a symbolic link in {}, which uid {} (or others) can write",
                    here.display(),
                    dir_path.display(),
                    st.st_uid
                ),
                hint: format!(
                    "unitgate does not follow it; point the app config at the real path of {}",
                    self.path.display()
                ),
            });
        }
        self.links += 1;
        if self.links > MAX_LINKS {
            return Err(Error::Insecure {
                what: format!(
                    "{}: more than {MAX_LINKS} symbolic links",
                    self.path.display()
                ),
                hint: "point the app config at the real path".into(),
            });
        }
        let target = readlinkat(link, "").map_err(self.os(here))?;
        if Path::new(&target).is_absolute() {
            self.push_root()?;
        }
        self.queue(&target);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("unitgate-walk-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn reaches_a_plain_directory_and_creates_missing_ones() {
        let d = tmp("plain");
        let want = d.join("a/b");
        assert!(open_dir(&want, Missing::Absent).unwrap().is_none());
        let (dir, walked) = open_dir(&want, Missing::Create(0o750)).unwrap().unwrap();
        assert_eq!(dir.path(), want);
        assert!(walked.is_dir() && want.is_dir());
        assert_eq!(walked.passed.last().unwrap().path, want);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn follows_links_only_where_nobody_else_can_write() {
        let d = tmp("links");
        std::fs::create_dir_all(d.join("real")).unwrap();
        symlink(d.join("real"), d.join("mine")).unwrap();
        // In a directory writable only by us: followed.
        let (dir, _) = open_dir(&d.join("mine"), Missing::Absent).unwrap().unwrap();
        assert_eq!(dir.path(), d.join("mine"));
        // The same link in a world-writable directory: refused.
        let open = d.join("open");
        std::fs::create_dir_all(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        symlink(d.join("real"), open.join("link")).unwrap();
        let err = open_dir(&open.join("link"), Missing::Absent).unwrap_err();
        assert_eq!(err.code(), 77, "{err:?}");
        assert!(err.message().unwrap().contains("symbolic link"), "{err:?}");
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_file_on_the_way_is_refused_and_a_program_is_reached() {
        let d = tmp("file");
        std::fs::write(d.join("f"), "x").unwrap();
        assert_eq!(
            open_dir(&d.join("f/x"), Missing::Absent)
                .unwrap_err()
                .code(),
            77
        );
        let w = reach_file(&d.join("f")).unwrap().unwrap();
        assert_eq!(file_type(&w.stat), SFlag::S_IFREG);
        assert!(reach_file(&d.join("nope")).unwrap().is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn control_is_the_topmost_directory_not_owned_by_root() {
        let p = |path: &str, uid, mode| Passed {
            path: PathBuf::from(path),
            uid,
            mode,
            fuse: false,
        };
        assert_eq!(
            control(&[p("/", 0, 0o755), p("/var", 0, 0o755)]),
            Control::Root
        );
        assert_eq!(
            control(&[
                p("/", 0, 0o755),
                p("/a", 1000, 0o750),
                p("/a/b", 1001, 0o700)
            ]),
            Control::User {
                uid: 1000,
                dir: "/a".into()
            }
        );
        assert_eq!(
            control(&[
                p("/", 0, 0o755),
                p("/tmp", 0, 0o1777),
                p("/tmp/x", 5, 0o700)
            ]),
            Control::Shared { dir: "/tmp".into() }
        );
        let mut fake_root = p("/srv/fuse", 0, 0o755);
        fake_root.fuse = true;
        assert_eq!(
            control(&[p("/", 0, 0o755), fake_root, p("/srv/fuse/x", 0, 0o755)]),
            Control::Fuse {
                dir: "/srv/fuse".into()
            }
        );
        // Whatever owner it claims, the caller's own included.
        let mut fake_mine = p("/srv/fuse", 1000, 0o700);
        fake_mine.fuse = true;
        assert_eq!(
            control(&[p("/", 0, 0o755), fake_mine]),
            Control::Fuse {
                dir: "/srv/fuse".into()
            }
        );
    }
}
