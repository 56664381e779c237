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
//! - `.locks/` — lock files (see `lock`).
//!
//! Every path is built from a name that passed [`App::check_instance`]
//! (the helper crate's rules) first, so no name can reach outside
//! `<state_dir>/` or touch another instance.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::app::{is_valid_env_key, App, Context, PORT_VAR};
use crate::error::{shown, Error, Result};

const INIT_PREFIX: &str = ".init-";
const TRASH_PREFIX: &str = ".deleted-";

/// Names of the initialized instances (sorted). Hidden entries, non-dirs
/// and names the built-in rule rejects are not instances.
pub fn list(app: &App) -> Result<Vec<String>> {
    let entries = match fs::read_dir(&app.state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io_path("list", &app.state_dir, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io_path("list", &app.state_dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if !unitgate_helper::name::is_valid_instance(&name) {
            continue;
        }
        if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `<state_dir>/<instance>/` exists (a complete instance).
pub fn exists(app: &App, instance: &str) -> bool {
    fs::symlink_metadata(app.instance_dir(instance))
        .map(|m| m.is_dir())
        .unwrap_or(false)
}

/// Whether a crashed `delete` left the instance's trash behind.
pub fn has_trash(app: &App, instance: &str) -> bool {
    fs::symlink_metadata(trash_dir(app, instance)).is_ok()
}

fn trash_dir(app: &App, instance: &str) -> PathBuf {
    app.state_dir.join(format!("{TRASH_PREFIX}{instance}"))
}

/// A `--set KEY=VALUE` of `init`.
pub fn parse_set(s: &str) -> Result<(String, String)> {
    let Some((k, v)) = s.split_once('=') else {
        return Err(Error::usage(
            format!("--set '{}' is not KEY=VALUE", shown(s)),
            "write e.g. --set MAP=c1m1_hotel",
        ));
    };
    if !is_valid_env_key(k) {
        return Err(Error::usage(
            format!("--set: invalid variable name '{}'", shown(k)),
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

/// A value quoted for systemd's `EnvironmentFile=` (and `sh`): double
/// quotes, with `\`, `"`, `$` and `` ` `` escaped. Control characters are
/// rejected earlier.
pub fn quote_env_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Reads back a value written by [`quote_env_value`] (or a bare one).
pub fn unquote_env_value(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|s| s.strip_suffix('"')) else {
        return v.trim().to_owned();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The environment file of a new instance (deterministic order).
pub fn env_file_text(
    app: &App,
    instance: &str,
    port: Option<u16>,
    sets: &[(String, String)],
) -> String {
    let dir = app.instance_dir(instance);
    let cx = Context {
        app: &app.name,
        instance,
        state_dir: &app.state_dir,
        instance_dir: &dir,
        port,
    };
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut put = |k: &str, v: String| {
        if vars.insert(k.to_owned(), v).is_none() {
            order.push(k.to_owned());
        }
    };
    put("UNITGATE_APP", app.name.clone());
    put("UNITGATE_INSTANCE", instance.to_owned());
    if let Some(p) = port {
        put(PORT_VAR, p.to_string());
    }
    for (k, t) in &app.env {
        put(k, t.expand(&cx));
    }
    for (k, v) in sets {
        put(k, v.clone());
    }
    let mut text = format!(
        "# Written by `unitgate init` for instance {instance} of app {}.\n# systemd EnvironmentFile= syntax; values are double-quoted.\n",
        app.name
    );
    for k in order {
        text.push_str(&format!("{k}={}\n", quote_env_value(&vars[&k])));
    }
    text
}

/// The value of `key` in an environment file's text.
pub fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines().rev().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| unquote_env_value(v.trim()))
    })
}

/// Ports in use by the existing instances, with their owners.
pub fn ports_in_use(app: &App) -> Result<BTreeMap<u16, String>> {
    let mut used = BTreeMap::new();
    for inst in list(app)? {
        let path = app.instance_dir(&inst).join(&app.env_file);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        if let Some(p) = env_value(&text, PORT_VAR).and_then(|v| v.parse::<u16>().ok()) {
            used.insert(p, inst);
        }
    }
    Ok(used)
}

/// The lowest free port of the range, or the requested one if it is free.
pub fn allocate_port(
    range: (u16, u16),
    used: &BTreeMap<u16, String>,
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
                    format!("--set PORT={} is not a port in {lo}-{hi}", shown(req)),
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

/// Builds the instance in `.init-<instance>.<pid>/` and renames it into
/// place. The caller holds the instance lock; `app_lock` is taken here for
/// the port allocation (which must see every other instance's port).
pub fn init(
    app: &App,
    instance: &str,
    sets: &[(String, String)],
    app_lock: impl FnOnce() -> Result<crate::lock::Lock>,
) -> Result<Created> {
    crate::lock::ensure_state_dir(app)?;
    let dest = app.instance_dir(instance);
    if exists(app, instance) {
        return Err(Error::Exists {
            instance: instance.to_owned(),
        });
    }
    if let Some(skel) = &app.skeleton_dir {
        if !skel.is_dir() {
            return Err(Error::Config {
                what: format!("skeleton_dir {} is not a directory", skel.display()),
                hint: format!(
                    "create it, or remove skeleton_dir from {}",
                    app.config_path.display()
                ),
            });
        }
    }
    remove_leftovers(app, instance)?;
    // Ports are allocated under the app lock, held until the rename, so two
    // concurrent inits can never pick the same port.
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
            Some(allocate_port(range, &ports_in_use(app)?, requested)?)
        }
        None => None,
    };
    let sets: Vec<(String, String)> = sets
        .iter()
        .filter(|(k, _)| port.is_none() || k != PORT_VAR)
        .cloned()
        .collect();
    let tmp = app
        .state_dir
        .join(format!("{INIT_PREFIX}{instance}.{}", std::process::id()));
    let built =
        build(app, instance, &tmp, port, &sets).and_then(|()| rename_noreplace(&tmp, &dest));
    if let Err(e) = built {
        let _ = remove_tree(&tmp);
        return Err(match e {
            Error::Io { err, .. } if err.raw_os_error() == Some(libc::EEXIST) => Error::Exists {
                instance: instance.to_owned(),
            },
            e => e,
        });
    }
    sync_dir(&app.state_dir)?;
    Ok(Created { dir: dest, port })
}

fn build(
    app: &App,
    instance: &str,
    tmp: &Path,
    port: Option<u16>,
    sets: &[(String, String)],
) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o750)
        .create(tmp)
        .map_err(|e| Error::io_path("create", tmp, e))?;
    if let Some(skel) = &app.skeleton_dir {
        copy_tree(skel, tmp)?;
    }
    let env_path = tmp.join(&app.env_file);
    let text = env_file_text(app, instance, port, sets);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&env_path)
        .map_err(|e| Error::io_path("write", &env_path, e))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io_path("write", &env_path, e))?;
    sync_dir(tmp)
}

/// Copies a skeleton: directories, regular files (mode kept, minus
/// set-id bits) and symlinks (as links, never followed).
fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    for entry in fs::read_dir(src).map_err(|e| Error::io_path("read skeleton", src, e))? {
        let entry = entry.map_err(|e| Error::io_path("read skeleton", src, e))?;
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let meta =
            fs::symlink_metadata(&from).map_err(|e| Error::io_path("read skeleton", &from, e))?;
        let mode = meta.permissions().mode() & 0o777;
        let ft = meta.file_type();
        if ft.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&to)
                .map_err(|e| Error::io_path("create", &to, e))?;
            copy_tree(&from, &to)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io_path("chmod", &to, e))?;
        } else if ft.is_symlink() {
            let target =
                fs::read_link(&from).map_err(|e| Error::io_path("read skeleton", &from, e))?;
            std::os::unix::fs::symlink(target, &to)
                .map_err(|e| Error::io_path("create", &to, e))?;
        } else if ft.is_file() {
            let mut input =
                File::open(&from).map_err(|e| Error::io_path("read skeleton", &from, e))?;
            let mut out = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode | 0o200)
                .open(&to)
                .map_err(|e| Error::io_path("create", &to, e))?;
            std::io::copy(&mut input, &mut out)
                .and_then(|_| out.sync_all())
                .map_err(|e| Error::io_path("copy to", &to, e))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io_path("chmod", &to, e))?;
        } else {
            return Err(Error::Config {
                what: format!(
                    "skeleton entry {} is not a file, directory or symlink",
                    from.display()
                ),
                hint: "remove it from the skeleton directory".into(),
            });
        }
    }
    Ok(())
}

/// Removes what killed `init`s and `delete`s of this instance left behind.
/// Only ever called with the instance lock held, so nothing else is using them.
pub fn remove_leftovers(app: &App, instance: &str) -> Result<()> {
    let prefix = format!("{INIT_PREFIX}{instance}.");
    let entries =
        fs::read_dir(&app.state_dir).map_err(|e| Error::io_path("list", &app.state_dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let is_ours = name
            .strip_prefix(&prefix)
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
        if is_ours {
            remove_tree(&entry.path())?;
        }
    }
    let trash = trash_dir(app, instance);
    if fs::symlink_metadata(&trash).is_ok() {
        remove_tree(&trash)?;
    }
    Ok(())
}

/// `delete`'s state part: rename the instance to its trash name (one atomic
/// step, after which it is no longer an instance), then purge the trash.
/// Re-running finishes a purge a crash interrupted. Returns whether there
/// was anything to remove.
pub fn retire(app: &App, instance: &str) -> Result<bool> {
    let dir = app.instance_dir(instance);
    let trash = trash_dir(app, instance);
    let mut found = false;
    if fs::symlink_metadata(&trash).is_ok() {
        found = true;
        remove_tree(&trash)?;
    }
    if exists(app, instance) {
        found = true;
        fs::rename(&dir, &trash).map_err(|e| Error::io_path("retire", &dir, e))?;
        sync_dir(&app.state_dir)?;
        remove_tree(&trash)?;
    }
    if app.state_dir.is_dir() {
        remove_leftovers(app, instance)?;
    }
    Ok(found)
}

/// `remove_dir_all` (which never follows symlinks), first making
/// directories we own writable if something inside was read-only.
fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            make_writable(path);
            fs::remove_dir_all(path).map_err(|e| Error::io_path("remove", path, e))
        }
        Err(e) => Err(Error::io_path("remove", path, e)),
    }
}

fn make_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if !meta.is_dir() {
        return;
    }
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o700));
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            make_writable(&e.path());
        }
    }
}

fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    let Err(err) = crate::system::rename_noreplace(from, to) else {
        return Ok(());
    };
    if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOSYS) {
        // Filesystems without RENAME_NOREPLACE: we hold the instance lock
        // and checked that `to` is absent, so a plain rename is equivalent.
        return fs::rename(from, to).map_err(|e| Error::io_path("rename into place", to, e));
    }
    Err(Error::io_path("rename into place", to, err))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io_path("sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        d
    }

    fn no_lock() -> Result<crate::lock::Lock> {
        Err(Error::usage("no app lock in this test", "none"))
    }

    #[test]
    fn quoting_round_trips() {
        for v in [
            "plain",
            "with space",
            "q\"uote",
            "back\\slash",
            "$HOME",
            "`id`",
            "",
        ] {
            let q = quote_env_value(v);
            assert!(q.starts_with('"') && q.ends_with('"'));
            assert_eq!(unquote_env_value(&q), v);
        }
        assert_eq!(quote_env_value("a$b"), "\"a\\$b\"");
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
        used.insert(10, "a".into());
        used.insert(11, "b".into());
        assert_eq!(allocate_port((10, 12), &used, None).unwrap(), 12);
        used.insert(12, "c".into());
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
        let lock = || {
            crate::lock::Waiter {
                timeout: std::time::Duration::from_secs(1),
            }
            .app(&app)
        };
        let a = init(&app, "a", &[("X".into(), "$y \"z\"".into())], lock).unwrap();
        assert_eq!(a.port, Some(5000));
        let text = fs::read_to_string(state.join("a/instance.env")).unwrap();
        assert_eq!(env_value(&text, "PORT").as_deref(), Some("5000"));
        assert_eq!(env_value(&text, "GAME_PORT").as_deref(), Some("5000"));
        assert_eq!(env_value(&text, "X").as_deref(), Some("$y \"z\""));
        assert_eq!(
            env_value(&text, "HOME_DIR").unwrap(),
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
        assert_eq!(init(&app, "a", &[], lock).unwrap_err().code(), 73);
        assert_eq!(init(&app, "b", &[], lock).unwrap().port, Some(5001));
        assert_eq!(init(&app, "c", &[], lock).unwrap_err().code(), 78);
        assert!(!exists(&app, "c"), "a failed init leaves nothing");
        assert!(retire(&app, "a").unwrap());
        assert!(!exists(&app, "a"));
        assert_eq!(
            init(&app, "c", &[], lock).unwrap().port,
            Some(5000),
            "a deleted instance's port is free again"
        );
        assert_eq!(list(&app).unwrap(), ["b", "c"]);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn leftovers_of_killed_commands_are_not_instances_and_get_cleaned() {
        let d = tmpdir("leftovers");
        let app = app_in(&d, "");
        fs::create_dir_all(d.join(".init-a.123/sub")).unwrap();
        fs::create_dir_all(d.join(".deleted-b/x")).unwrap();
        fs::create_dir_all(d.join(".init-ab.77")).unwrap();
        assert!(list(&app).unwrap().is_empty());
        init(&app, "a", &[], no_lock).unwrap();
        assert!(!d.join(".init-a.123").exists());
        assert!(
            d.join(".init-ab.77").exists(),
            "other instances' leftovers are untouched"
        );
        assert!(has_trash(&app, "b"));
        assert!(
            retire(&app, "b").unwrap(),
            "re-running delete finishes the purge"
        );
        assert!(!has_trash(&app, "b"));
        assert!(!retire(&app, "b").unwrap());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn retire_never_follows_symlinks_out_of_the_instance() {
        let d = tmpdir("symlink");
        let app = app_in(&d.join("state"), "");
        let outside = d.join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("keep"), "x").unwrap();
        init(&app, "a", &[], no_lock).unwrap();
        std::os::unix::fs::symlink(&outside, app.instance_dir("a").join("escape")).unwrap();
        fs::create_dir_all(app.instance_dir("a").join("ro/sub")).unwrap();
        fs::set_permissions(
            app.instance_dir("a").join("ro"),
            fs::Permissions::from_mode(0o500),
        )
        .unwrap();
        retire(&app, "a").unwrap();
        assert!(outside.join("keep").exists());
        let _ = fs::remove_dir_all(&d);
    }
}
