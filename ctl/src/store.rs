//! Instance state directories: listing, `init` (build aside, rename into
//! place), retiring on `delete`, and ports.
//!
//! Layout of `<state_dir>`:
//!
//! - `<instance>/` — a complete instance; only ever appears by `rename(2)`
//!   of a fully built directory, so a crash leaves it complete or absent.
//! - `.init-<instance>.<pid>/` — an `init` in progress (or killed): never an
//!   instance, removed by the next `init` or `delete` of that name.
//! - `.deleted-<instance>/` — a `delete` that renamed the instance away;
//!   purged by that `delete`, or by the next `init`/`delete` if it crashed.
//! - `.locks/` — lock files (see `lock`) and the status cache.
//!
//! The state directory belongs to the app's service account, so anything
//! in it may be a trap the account set: a [`Store`] holds the directory
//! open (reached by [`walk`], which follows no link another account could
//! have planted) and does everything relative to it through [`DirFd`],
//! never following a link and creating every file with `O_EXCL`. Every
//! instance is an [`InstanceName`] (the helper crate's rules, checked by
//! [`App::instance`]), so no name can reach outside `<state_dir>/` or
//! touch another instance.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;

use crate::app::{is_valid_env_key, App, PORT_VAR};
use crate::dirfd::{DirFd, Kind};
use crate::envfile;
use crate::error::{quoted, Error, Result};
use crate::name::InstanceName;
use crate::walk::{self, Missing};

const INIT_PREFIX: &str = ".init-";
const TRASH_PREFIX: &str = ".deleted-";

/// What one listing of the state directory shows ([`Store::survey`]).
#[derive(Debug, Default)]
pub struct Survey {
    /// Instances with a complete state directory, sorted.
    pub instances: BTreeSet<InstanceName>,
    /// Names whose trash a crashed `delete` left behind.
    pub trash: BTreeSet<String>,
}
/// The directory of lock files and the status cache.
pub const LOCK_DIR: &str = ".locks";
/// Skeletons nested deeper than this are refused (they are copied by
/// recursion).
const MAX_SKELETON_DEPTH: usize = 64;

/// An app's state directory, held open for the whole command.
#[derive(Debug)]
pub struct Store<'a> {
    pub app: &'a App,
    /// `None` when the state directory does not exist (yet).
    dir: Option<DirFd>,
}

impl<'a> Store<'a> {
    /// Opens the state directory if it exists.
    pub fn open(app: &'a App) -> Result<Store<'a>> {
        let dir = walk::open_dir(&app.state_dir, Missing::Absent)?.map(|(d, _)| d);
        Ok(Store { app, dir })
    }

    /// Opens the state directory, creating it (and missing parents, mode
    /// 0750) when the caller may.
    pub fn open_or_create(app: &'a App) -> Result<Store<'a>> {
        let dir = walk::open_dir(&app.state_dir, Missing::Create(0o750))?.map(|(d, _)| d);
        Ok(Store { app, dir })
    }

    fn dir(&self) -> Result<&DirFd> {
        self.dir.as_ref().ok_or_else(|| Error::NotPermitted {
            what: format!(
                "the state directory {} does not exist",
                self.app.state_dir.display()
            ),
            hint: "ask an administrator to create it, owned by the app's service account".into(),
        })
    }

    fn io(&self, verb: &str, name: &str, e: std::io::Error) -> Error {
        Error::io_path(verb, &self.app.state_dir.join(name), e)
    }

    /// `<state_dir>/.locks`, created on first use.
    pub fn lock_dir(&self) -> Result<DirFd> {
        let dir = self.dir()?;
        let locks = dir
            .ensure_dir(OsStr::new(LOCK_DIR), 0o770)
            .map_err(|e| self.io("open", LOCK_DIR, e))?;
        crate::lock::share_with_group(locks.as_fd(), 0o770);
        Ok(locks)
    }

    /// `<state_dir>/.locks` if it exists (for readers, who create nothing).
    pub fn existing_lock_dir(&self) -> Option<DirFd> {
        self.dir
            .as_ref()?
            .open_dir(OsStr::new(LOCK_DIR))
            .ok()
            .flatten()
    }

    /// Names of the initialized instances (sorted). Hidden entries, links,
    /// non-directories and names the built-in rule rejects are not instances.
    pub fn list(&self) -> Result<Vec<InstanceName>> {
        Ok(self.survey()?.instances.into_iter().collect())
    }

    /// One read of the state directory: its instances and the trash of
    /// crashed deletes, as [`Store::exists`] and [`Store::has_trash`] would
    /// tell each (a listing of 10,000 instead of 20,000 `fstatat`s).
    pub fn survey(&self) -> Result<Survey> {
        let mut survey = Survey::default();
        let Some(dir) = &self.dir else {
            return Ok(survey);
        };
        let entries = dir
            .entries()
            .map_err(|e| Error::io_path("list", dir.path(), e))?;
        for (name, kind) in entries {
            let Some(name) = name.to_str() else { continue };
            let kind = match kind {
                Some(k) => Some(k),
                None => dir.kind(OsStr::new(name)).ok().flatten(),
            };
            if let Some(trashed) = name.strip_prefix(TRASH_PREFIX) {
                if kind.is_some() {
                    survey.trash.insert(trashed.to_owned());
                }
            } else if let Ok(instance) = self.app.instance(name) {
                if kind == Some(Kind::Dir) {
                    survey.instances.insert(instance);
                }
            }
        }
        Ok(survey)
    }

    /// Whether `<state_dir>/<instance>/` is a directory (a complete instance).
    pub fn exists(&self, instance: &str) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|d| d.is_dir(OsStr::new(instance)))
    }

    /// Whether a crashed `delete` left the instance's trash behind.
    pub fn has_trash(&self, instance: &str) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|d| matches!(d.kind(OsStr::new(&trash_name(instance))), Ok(Some(_))))
    }

    /// The instance's environment file: its text, parsed; `None` when it
    /// has none.
    pub fn environment(&self, instance: &InstanceName) -> Result<Option<Environment>> {
        let Some(inst) = self
            .dir()?
            .open_dir(OsStr::new(instance.as_str()))
            .map_err(|e| self.io("open", instance.as_str(), e))?
        else {
            return Ok(None);
        };
        let name = &self.app.env_file;
        let Some(bytes) = inst
            .read_file(OsStr::new(name), envfile::MAX_SIZE)
            .map_err(|e| Error::io_path("read", &inst.child_path(name), e))?
        else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let vars = envfile::parse(&text).map_err(|why| Error::Config {
            what: format!("{}: {why}", inst.child_path(name).display()),
            hint: "fix the file (KEY=\"VALUE\" lines), or `unitgate reset` the instance".into(),
        })?;
        Ok(Some(Environment { text, vars }))
    }

    /// Ports in use by the existing instances, with their owners.
    pub fn ports_in_use(&self) -> Result<BTreeMap<u16, InstanceName>> {
        let mut used = BTreeMap::new();
        for inst in self.list()? {
            // An instance whose file is unreadable or malformed holds no
            // port we can see; `launch` reports its file when it starts.
            let Ok(Some(env)) = self.environment(&inst) else {
                continue;
            };
            if let Some(p) = env.port() {
                used.insert(p, inst);
            }
        }
        Ok(used)
    }

    /// Builds the instance in `.init-<instance>.<pid>/` and renames it into
    /// place. The caller holds the instance lock; `app_lock` is taken here
    /// for the port allocation (which must see every other instance's port).
    pub fn init(
        &self,
        instance: &InstanceName,
        sets: &[(String, String)],
        app_lock: impl FnOnce() -> Result<crate::lock::Lock>,
    ) -> Result<Created> {
        let app = self.app;
        let dir = self.dir()?;
        if self.exists(instance.as_str()) {
            return Err(Error::Exists {
                instance: instance.to_string(),
            });
        }
        let skeleton = self.skeleton()?;
        self.remove_leftovers(instance)?;
        // Ports are allocated under the app lock, held until the rename, so
        // two concurrent inits can never pick the same port.
        let _app_lock = match app.port_range {
            Some(_) => Some(app_lock()?),
            None => None,
        };
        let port = match app.port_range {
            Some(range) => {
                let requested = sets
                    .iter()
                    .rev()
                    .find(|(k, _)| k == PORT_VAR)
                    .map(|(_, v)| v.as_str());
                Some(allocate_port(range, &self.ports_in_use()?, requested)?)
            }
            None => None,
        };
        let sets: Vec<(String, String)> = sets
            .iter()
            .filter(|(k, _)| port.is_none() || k != PORT_VAR)
            .cloned()
            .collect();
        let tmp = self.build(skeleton.as_ref(), instance, port, &sets)?;
        let placed = dir
            .rename_noreplace(OsStr::new(&tmp), OsStr::new(instance.as_str()))
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Error::Exists {
                    instance: instance.to_string(),
                },
                _ => self.io("rename into place", instance.as_str(), e),
            });
        if let Err(e) = placed {
            let _ = dir.remove_tree(OsStr::new(&tmp));
            return Err(e);
        }
        dir.sync()
            .map_err(|e| Error::io_path("sync", dir.path(), e))?;
        Ok(Created {
            dir: app.instance_dir(instance),
            port,
        })
    }

    /// `reset`'s state part: a fresh instance from the skeleton with the
    /// same port and `--set` values, swapped with the old one in one step
    /// (`RENAME_EXCHANGE`: at every moment the instance exists, old or
    /// new), then the old one purged. The caller holds the instance lock
    /// and has stopped it.
    pub fn rebuild(&self, instance: &InstanceName) -> Result<Created> {
        let dir = self.dir()?;
        let old = self.environment(instance)?;
        let (port, sets) = match &old {
            Some(env) => (env.port(), env.sets(self.app)),
            None => (None, Vec::new()),
        };
        let skeleton = self.skeleton()?;
        self.remove_leftovers(instance)?;
        let tmp = self.build(skeleton.as_ref(), instance, port, &sets)?;
        if let Err(e) = dir.exchange(OsStr::new(&tmp), OsStr::new(instance.as_str())) {
            let _ = dir.remove_tree(OsStr::new(&tmp));
            return Err(self.io("swap in the new state of", instance.as_str(), e));
        }
        dir.sync()
            .map_err(|e| Error::io_path("sync", dir.path(), e))?;
        // `tmp` now holds the old state: a crash from here on leaves it for
        // the next command's `remove_leftovers`.
        self.remove_leftovers(instance)?;
        Ok(Created {
            dir: self.app.instance_dir(instance),
            port,
        })
    }

    /// `reconfigure`'s state part: the environment file rendered again
    /// from the app config as it is now (same port, same `--set` values)
    /// and written over the old one in one step, if it differs. Returns
    /// what changed.
    pub fn reconfigure(&self, instance: &InstanceName) -> Result<Vec<Change>> {
        let old = self
            .environment(instance)?
            .ok_or_else(|| Error::NoSuchInstance {
                instance: instance.to_string(),
            })?;
        let text = envfile::text_for(self.app, instance, old.port(), &old.sets(self.app));
        let new = envfile::parse(&text).unwrap_or_default();
        let changes = changes(&old.vars, &new);
        if text != old.text {
            let inst = self
                .dir()?
                .open_dir(OsStr::new(instance.as_str()))
                .map_err(|e| self.io("open", instance.as_str(), e))?
                .ok_or_else(|| Error::NoSuchInstance {
                    instance: instance.to_string(),
                })?;
            let name = OsStr::new(&self.app.env_file);
            remove_stale_temps(&inst, &self.app.env_file);
            inst.replace_file(name, 0o640, text.as_bytes())
                .map_err(|e| Error::io_path("write", &inst.child_path(name), e))?;
        }
        Ok(changes)
    }

    fn skeleton(&self) -> Result<Option<DirFd>> {
        let Some(skel) = &self.app.skeleton_dir else {
            return Ok(None);
        };
        let found = walk::open_dir(skel, Missing::Absent)?.map(|(d, _)| d);
        found.map(Some).ok_or_else(|| Error::Config {
            what: format!("skeleton_dir {} is not a directory", skel.display()),
            hint: format!(
                "create it, or remove skeleton_dir from {}",
                self.app.config_path.display()
            ),
        })
    }

    /// A complete instance in `.init-<instance>.<pid>/` (skeleton copy and
    /// environment file, synced); returns that name.
    fn build(
        &self,
        skeleton: Option<&DirFd>,
        instance: &InstanceName,
        port: Option<u16>,
        sets: &[(String, String)],
    ) -> Result<String> {
        let tmp = format!("{INIT_PREFIX}{instance}.{}", std::process::id());
        let target = self
            .dir()?
            .create_dir(OsStr::new(&tmp), 0o750)
            .map_err(|e| self.io("create", &tmp, e))?;
        let built = (|| {
            if let Some(skel) = skeleton {
                copy_tree(skel, &target, 0)?;
            }
            let name = OsStr::new(&self.app.env_file);
            let path = target.child_path(name);
            let text = envfile::text_for(self.app, instance, port, sets);
            let mut f = target
                .create_file(name, 0o640)
                .map_err(|e| Error::io_path("write", &path, e))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io_path("write", &path, e))?;
            target
                .sync()
                .map_err(|e| Error::io_path("sync", target.path(), e))
        })();
        match built {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = self.dir()?.remove_tree(OsStr::new(&tmp));
                Err(e)
            }
        }
    }

    /// Removes what killed `init`s, `reset`s and `delete`s of this instance
    /// left behind. Only ever called with the instance lock held, so
    /// nothing else is using them.
    pub fn remove_leftovers(&self, instance: &InstanceName) -> Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let prefix = format!("{INIT_PREFIX}{instance}.");
        let entries = dir
            .entries()
            .map_err(|e| Error::io_path("list", dir.path(), e))?;
        for (name, _) in entries {
            let Some(text) = name.to_str() else { continue };
            let is_ours = text
                .strip_prefix(&prefix)
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
            if is_ours {
                dir.remove_tree(&name)
                    .map_err(|e| self.io("remove", text, e))?;
            }
        }
        let trash = trash_name(instance.as_str());
        dir.remove_tree(OsStr::new(&trash))
            .map_err(|e| self.io("remove", &trash, e))?;
        Ok(())
    }

    /// `delete`'s state part: rename the instance to its trash name (one
    /// atomic step, after which it is no longer an instance), then purge the
    /// trash. Re-running finishes a purge a crash interrupted. Returns
    /// whether there was anything to remove.
    pub fn retire(&self, instance: &InstanceName) -> Result<bool> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let name = instance.as_str();
        let trash = trash_name(name);
        let mut found = dir
            .remove_tree(OsStr::new(&trash))
            .map_err(|e| self.io("remove", &trash, e))?;
        if self.exists(name) {
            found = true;
            dir.rename(OsStr::new(name), OsStr::new(&trash))
                .map_err(|e| self.io("retire", name, e))?;
            dir.sync()
                .map_err(|e| Error::io_path("sync", dir.path(), e))?;
            dir.remove_tree(OsStr::new(&trash))
                .map_err(|e| self.io("remove", &trash, e))?;
        }
        self.remove_leftovers(instance)?;
        Ok(found)
    }
}

/// Temporary files a killed `reconfigure` left beside the environment
/// file (`.<env_file>.<pid>.<stamp>`, see `DirFd::replace_file`): the
/// instance lock is held, so none of them is being written. Best effort.
fn remove_stale_temps(inst: &DirFd, env_file: &str) {
    let prefix = format!(".{env_file}.");
    let Ok(entries) = inst.entries() else { return };
    for (name, kind) in entries {
        let ours = name.to_str().is_some_and(|n| n.starts_with(&prefix));
        if ours && kind != Some(Kind::Dir) {
            let _ = inst.unlink(&name);
        }
    }
}

/// An instance's environment file as read.
#[derive(Debug, Clone)]
pub struct Environment {
    pub text: String,
    pub vars: Vec<(String, String)>,
}

impl Environment {
    pub fn port(&self) -> Option<u16> {
        self.get(PORT_VAR).and_then(|v| v.parse().ok())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find_map(|(k, v)| (k == key).then_some(v.as_str()))
    }

    /// The `--set` values `init` was given (kept by `reset` and
    /// `reconfigure`).
    pub fn sets(&self, app: &App) -> Vec<(String, String)> {
        envfile::sets(&self.text, app)
    }
}

/// One variable of an environment file that `reconfigure` changed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub name: String,
    /// `None`: it is new.
    pub old: Option<String>,
    /// `None`: it is gone.
    pub new: Option<String>,
}

fn changes(old: &[(String, String)], new: &[(String, String)]) -> Vec<Change> {
    let get = |vars: &[(String, String)], k: &str| {
        vars.iter().find_map(|(n, v)| (n == k).then(|| v.clone()))
    };
    let mut keys: Vec<&String> = old.iter().chain(new).map(|(k, _)| k).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter_map(|k| {
            let (o, n) = (get(old, k), get(new, k));
            (o != n).then(|| Change {
                name: k.clone(),
                old: o,
                new: n,
            })
        })
        .collect()
}

fn trash_name(instance: &str) -> String {
    format!("{TRASH_PREFIX}{instance}")
}

/// A `--set KEY=VALUE` of `init`.
pub fn parse_set(s: &str) -> Result<(String, String)> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Error::usage(
            format!("--set '{}' is not KEY=VALUE", quoted(s)),
            "write e.g. --set MAP=c1m1_hotel",
        ));
    };
    if !is_valid_env_key(k) {
        return Err(Error::usage(
            format!("--set: invalid variable name '{}'", quoted(k)),
            "variable names match [A-Za-z_][A-Za-z0-9_]*",
        ));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err(Error::usage(
            format!("--set {k}: the value contains a control character"),
            "values must be one line of printable text",
        ));
    }
    Ok((k.to_owned(), v.to_owned()))
}

/// The lowest free port of the range, or the requested one if it is free.
pub fn allocate_port(
    range: (u16, u16),
    used: &BTreeMap<u16, InstanceName>,
    requested: Option<&str>,
) -> Result<u16> {
    let (lo, hi) = range;
    if let Some(req) = requested {
        let p: u16 = req
            .parse()
            .ok()
            .filter(|p| (lo..=hi).contains(p))
            .ok_or_else(|| {
                Error::usage(
                    format!("--set PORT={} is not a port in {lo}-{hi}", quoted(req)),
                    "pick a port in the app's port_range",
                )
            })?;
        if let Some(owner) = used.get(&p) {
            return Err(Error::usage(
                format!("port {p} is already used by instance '{owner}'"),
                "pick another port, or leave PORT out to get a free one",
            ));
        }
        return Ok(p);
    }
    (lo..=hi)
        .find(|p| !used.contains_key(p))
        .ok_or_else(|| Error::Config {
            what: format!(
                "no free port left in port_range {lo}-{hi} (all {} in use)",
                u32::from(hi - lo) + 1
            ),
            hint: "delete unused instances, or ask an administrator to widen port_range".into(),
        })
}

/// What `init` made.
#[derive(Debug)]
pub struct Created {
    pub dir: PathBuf,
    pub port: Option<u16>,
}

/// Copies a skeleton: directories, regular files (permission bits kept,
/// set-id bits dropped) and symlinks (as links, never followed), each read
/// relative to the skeleton directory without following links.
fn copy_tree(src: &DirFd, dst: &DirFd, depth: usize) -> Result<()> {
    if depth > MAX_SKELETON_DEPTH {
        return Err(Error::Config {
            what: format!(
                "the skeleton is nested deeper than {MAX_SKELETON_DEPTH} directories at {}",
                src.path().display()
            ),
            hint: "flatten the skeleton directory".into(),
        });
    }
    let read = |e| Error::io_path("read skeleton", src.path(), e);
    for (name, _) in src.entries().map_err(read)? {
        let from = src.child_path(&name);
        let to = dst.child_path(&name);
        let create = |e| Error::io_path("create", &to, e);
        let mode = src
            .mode_of(&name)
            .map_err(|e| Error::io_path("read skeleton", &from, e))?
            & 0o777;
        match src
            .kind(&name)
            .map_err(|e| Error::io_path("read skeleton", &from, e))?
        {
            Some(Kind::Dir) => {
                let sub_src = src
                    .open_dir(&name)
                    .map_err(|e| Error::io_path("read skeleton", &from, e))?
                    .ok_or_else(|| {
                        Error::io_path("read skeleton", &from, std::io::ErrorKind::NotFound.into())
                    })?;
                let sub_dst = dst.create_dir(&name, 0o700).map_err(create)?;
                copy_tree(&sub_src, &sub_dst, depth + 1)?;
                sub_dst.set_mode(mode).map_err(create)?;
            }
            Some(Kind::Link) => {
                let target = src
                    .read_link(&name)
                    .map_err(|e| Error::io_path("read skeleton", &from, e))?;
                dst.symlink(&target, &name).map_err(create)?;
            }
            Some(Kind::File) => {
                let mut input = src
                    .open_read(&name)
                    .map_err(|e| Error::io_path("read skeleton", &from, e))?;
                let mut out = dst.create_file(&name, 0o600).map_err(create)?;
                std::io::copy(&mut input, &mut out)
                    .and_then(|_| out.sync_all())
                    .map_err(|e| Error::io_path("copy to", &to, e))?;
                nix::sys::stat::fchmod(&out, nix::sys::stat::Mode::from_bits_truncate(mode))
                    .map_err(|e| create(e.into()))?;
            }
            Some(Kind::Other) => {
                return Err(Error::Config {
                    what: format!(
                        "skeleton entry {} is not a file, directory or symlink",
                        from.display()
                    ),
                    hint: "remove it from the skeleton directory".into(),
                })
            }
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn app_in(dir: &Path, extra: &str) -> App {
        let text = format!(
            "unit = \"demo@.service\"\ncallers = [\"web\"]\nactions = [\"show\"]\nstate_dir = \"{}\"\n{extra}",
            dir.display()
        );
        crate::app::parse(
            "demo",
            Path::new("/etc/unitgate/apps/demo.toml"),
            text.as_bytes(),
        )
        .unwrap()
    }

    fn tmpdir(tag: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("unitgate-ctl-test-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    fn n(name: &str) -> InstanceName {
        InstanceName::checked(name)
    }

    fn names(store: &Store<'_>) -> Vec<String> {
        store
            .list()
            .unwrap()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    fn no_lock() -> Result<crate::lock::Lock> {
        Err(Error::usage("no app lock in this test", "none"))
    }

    #[test]
    fn set_parsing() {
        assert_eq!(parse_set("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert_eq!(parse_set("A=").unwrap(), ("A".into(), "".into()));
        for bad in ["A", "=x", "1A=x", "A-B=x", "A=x\ny"] {
            assert_eq!(parse_set(bad).unwrap_err().code(), 64, "{bad:?}");
        }
    }

    #[test]
    fn ports_are_lowest_free_or_requested() {
        let mut used = BTreeMap::new();
        assert_eq!(allocate_port((10, 12), &used, None).unwrap(), 10);
        used.insert(10, InstanceName::checked("a"));
        used.insert(11, InstanceName::checked("b"));
        assert_eq!(allocate_port((10, 12), &used, None).unwrap(), 12);
        used.insert(12, InstanceName::checked("c"));
        assert_eq!(allocate_port((10, 12), &used, None).unwrap_err().code(), 78);
        assert_eq!(allocate_port((10, 20), &used, Some("15")).unwrap(), 15);
        assert!(allocate_port((10, 20), &used, Some("11"))
            .unwrap_err()
            .message()
            .unwrap()
            .contains("'b'"));
        assert_eq!(
            allocate_port((10, 20), &used, Some("99"))
                .unwrap_err()
                .code(),
            64
        );
    }

    #[test]
    fn init_builds_a_complete_instance_and_ports_are_unique_and_freed() {
        let d = tmpdir("init");
        let skel = d.join("skel");
        fs::create_dir_all(skel.join("cfg")).unwrap();
        fs::write(skel.join("cfg/server.cfg"), "hostname x\n").unwrap();
        std::os::unix::fs::symlink("cfg/server.cfg", skel.join("link")).unwrap();
        let state = d.join("state");
        let app = app_in(
            &state,
            &format!(
                "skeleton_dir = \"{}\"\nport_range = [5000, 5001]\n[env]\nGAME_PORT = \"{{port}}\"\nHOME_DIR = \"{{instance_dir}}\"\n",
                skel.display()
            ),
        );
        let store = Store::open_or_create(&app).unwrap();
        let lock = || {
            crate::lock::Waiter {
                timeout: std::time::Duration::from_secs(1),
            }
            .app(&store)
        };
        let a = store
            .init(&n("a"), &[("X".into(), "$y \"z\"".into())], lock)
            .unwrap();
        assert_eq!(a.port, Some(5000));
        let text = fs::read_to_string(state.join("a/instance.env")).unwrap();
        assert_eq!(envfile::lookup(&text, "PORT").as_deref(), Some("5000"));
        assert_eq!(envfile::lookup(&text, "GAME_PORT").as_deref(), Some("5000"));
        assert_eq!(envfile::lookup(&text, "X").as_deref(), Some("$y \"z\""));
        assert_eq!(
            envfile::lookup(&text, "HOME_DIR").unwrap(),
            state.join("a").display().to_string()
        );
        assert_eq!(
            fs::read_to_string(state.join("a/cfg/server.cfg")).unwrap(),
            "hostname x\n"
        );
        assert!(fs::symlink_metadata(state.join("a/link"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(store.init(&n("a"), &[], lock).unwrap_err().code(), 73);
        assert_eq!(store.init(&n("b"), &[], lock).unwrap().port, Some(5001));
        assert_eq!(store.init(&n("c"), &[], lock).unwrap_err().code(), 78);
        assert!(!store.exists("c"), "a failed init leaves nothing");
        assert!(store.retire(&n("a")).unwrap());
        assert!(!store.exists("a"));
        assert_eq!(
            store.init(&n("c"), &[], lock).unwrap().port,
            Some(5000),
            "a deleted instance's port is free again"
        );
        assert_eq!(names(&store), ["b", "c"]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn leftovers_of_killed_commands_are_not_instances_and_get_cleaned() {
        let d = tmpdir("leftovers");
        let app = app_in(&d, "");
        fs::create_dir_all(d.join(".init-a.123/sub")).unwrap();
        fs::create_dir_all(d.join(".deleted-b/x")).unwrap();
        fs::create_dir_all(d.join(".init-ab.77")).unwrap();
        let store = Store::open(&app).unwrap();
        assert!(store.list().unwrap().is_empty());
        store.init(&n("a"), &[], no_lock).unwrap();
        assert!(!d.join(".init-a.123").exists());
        assert!(
            d.join(".init-ab.77").exists(),
            "other instances' leftovers are untouched"
        );
        assert!(store.has_trash("b"));
        // One listing tells the same as asking each name.
        let survey = store.survey().unwrap();
        assert_eq!(
            survey
                .instances
                .iter()
                .map(|i| i.as_str())
                .collect::<Vec<_>>(),
            ["a"]
        );
        assert_eq!(survey.trash.iter().collect::<Vec<_>>(), ["b"]);
        assert!(
            store.retire(&n("b")).unwrap(),
            "re-running delete finishes the purge"
        );
        assert!(!store.has_trash("b"));
        assert!(!store.retire(&n("b")).unwrap());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn links_in_the_state_dir_are_never_instances_nor_followed() {
        let d = tmpdir("symlink");
        let app = app_in(&d.join("state"), "");
        let outside = d.join("outside");
        fs::create_dir_all(outside.join("victim")).unwrap();
        fs::write(outside.join("victim/keep"), "x").unwrap();
        let store = Store::open_or_create(&app).unwrap();
        store.init(&n("a"), &[], no_lock).unwrap();
        std::os::unix::fs::symlink(&outside, app.instance_dir(&n("a")).join("escape")).unwrap();
        fs::create_dir_all(app.instance_dir(&n("a")).join("ro/sub")).unwrap();
        fs::set_permissions(
            app.instance_dir(&n("a")).join("ro"),
            fs::Permissions::from_mode(0o500),
        )
        .unwrap();
        // A planted link where an instance would be: not listed, not
        // retired through, and init refuses to build over it.
        std::os::unix::fs::symlink(outside.join("victim"), d.join("state/victim")).unwrap();
        assert_eq!(names(&store), ["a"]);
        assert!(!store.exists("victim"));
        assert!(!store.retire(&n("victim")).unwrap());
        assert!(store.init(&n("victim"), &[], no_lock).is_err());
        store.retire(&n("a")).unwrap();
        assert!(outside.join("victim/keep").exists());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn a_state_dir_reached_through_a_foreign_link_is_refused() {
        let d = tmpdir("foreign");
        let open = d.join("open");
        fs::create_dir_all(d.join("real")).unwrap();
        fs::create_dir_all(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).unwrap();
        std::os::unix::fs::symlink(d.join("real"), open.join("state")).unwrap();
        let app = app_in(&open.join("state"), "");
        assert_eq!(Store::open(&app).unwrap_err().code(), 77);
        let _ = fs::remove_dir_all(&d);
    }
}
