//! Reads unit state straight from systemd over the system bus, without
//! root and without a process per instance.
//!
//! A read is a constant number of round trips whatever the instance count:
//! `ListUnitsByPatterns` (every loaded unit of the app, with its states) and
//! `ListUnitFilesByPatterns` (enablement), then one pipelined burst of
//! `Properties.Get` calls for the per-unit figures (main PID, restarts,
//! memory, since): all requests are written before any reply is read, so
//! 1000 units cost one wait, not 1000.

use std::collections::{BTreeMap, HashMap};
use std::io::ErrorKind;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zbus::blocking::{Connection, MessageIterator};
use zbus::message::{Message, Type as MsgType};
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

use crate::dirfd::DirFd;
use crate::error::{Error, Result};
pub use crate::unit::UnitInfo;
use crate::unit::{Active, Sub};

pub(crate) const DEST: &str = "org.freedesktop.systemd1";
pub(crate) const PATH: &str = "/org/freedesktop/systemd1";
pub(crate) const MANAGER: &str = "org.freedesktop.systemd1.Manager";
pub(crate) const UNIT: &str = "org.freedesktop.systemd1.Unit";
pub(crate) const SERVICE: &str = "org.freedesktop.systemd1.Service";
pub(crate) const PROPS: &str = "org.freedesktop.DBus.Properties";
/// Where `dbus.socket` listens. zbus's default is the `/var/run` path of the
/// D-Bus spec, which on a systemd machine is a compatibility link that
/// systemd-tmpfiles makes at boot (and not at all where `/var` is mounted
/// late): through it, a caller early in boot finds no bus where one runs.
/// `DBUS_SYSTEM_BUS_ADDRESS` still wins, as in libdbus and sd-bus.
const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// How often [`wait_for_system_bus`] tries again while the bus is not up.
const BUS_POLL: Duration = Duration::from_millis(100);
/// Most calls in flight at once (below the system bus's default
/// `max_replies_per_connection` of 128).
const WINDOW: usize = 100;

/// How a service's last run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceOutcome {
    pub result: Option<String>,
    pub main_exit: Option<MainExit>,
    pub restarts: Option<u32>,
}

/// The main process's end, from systemd's `ExecMainCode`/`ExecMainStatus`
/// (a `siginfo` code: exited, killed, dumped core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MainExit {
    Exited(i32),
    Signal(String),
}

impl MainExit {
    fn from_wait(code: i32, status: i32) -> Option<MainExit> {
        match code {
            libc::CLD_EXITED => Some(MainExit::Exited(status)),
            libc::CLD_KILLED | libc::CLD_DUMPED => Some(MainExit::Signal(signal_name(status))),
            _ => None,
        }
    }
}

/// `SIGKILL` for 9, or the number.
fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map_or_else(|_| format!("signal {sig}"), |s| s.as_str().to_owned())
}

/// How much to read per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// States and enablement only (what lifecycle commands check).
    States,
    /// Also main PID and restarts (what settling watches).
    Progress,
    /// Also main PID, restarts, memory and since (what `status` shows).
    Full,
}

pub struct Systemd {
    conn: Connection,
}

pub(crate) fn dbus_err(what: &str, e: zbus::Error) -> Error {
    Error::Dbus {
        what: format!("{what}: {e}"),
    }
}

type ListedUnit = (
    String,
    String,
    String,
    String,
    String,
    String,
    OwnedObjectPath,
    u32,
    String,
    OwnedObjectPath,
);

/// The system bus's address: `DBUS_SYSTEM_BUS_ADDRESS`, else [`SYSTEM_BUS`].
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| SYSTEM_BUS.to_owned())
}

/// One attempt to connect to the system bus.
pub fn connect_system_bus() -> zbus::Result<Connection> {
    zbus::blocking::connection::Builder::address(system_bus_address().as_str())?.build()
}

/// True when the bus is simply not up (yet): no socket, or nobody listening
/// on it (`dbus.socket` not started, or stopped).
fn bus_not_up(e: &zbus::Error) -> bool {
    matches!(e, zbus::Error::Connection(io, _)
        if matches!(io.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused))
}

/// Connects to the system bus, waiting up to `wait` for it to come up: a
/// command run early in boot (before `dbus.socket`) gets its answer once the
/// bus is there instead of a failure; says once on stderr that it waits.
/// The bus still down at the deadline is [`Error::NoBus`]; any other
/// failure [`Error::Dbus`] (both exit 69).
pub fn wait_for_system_bus(wait: Duration) -> Result<Connection> {
    let deadline = Instant::now() + wait;
    let mut said = false;
    loop {
        let e = match connect_system_bus() {
            Ok(conn) => return Ok(conn),
            Err(e) => e,
        };
        if !bus_not_up(&e) {
            return Err(dbus_err("connecting to the system bus", e));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::NoBus {
                detail: e.to_string(),
                waited_secs: wait.as_secs(),
            });
        }
        if !said {
            eprintln!(
                "unitgate: the system bus is not up yet; waiting up to {} s for it",
                left.as_secs_f64().ceil()
            );
            said = true;
        }
        std::thread::sleep(BUS_POLL.min(left));
    }
}

impl Systemd {
    /// Connects to systemd over the system bus, waiting up to `wait` for the
    /// bus (see [`wait_for_system_bus`]).
    pub fn connect(wait: Duration) -> Result<Systemd> {
        Ok(Systemd {
            conn: wait_for_system_bus(wait)?,
        })
    }

    /// Units matching `patterns` (shell globs such as `demo@*.service`, or
    /// exact unit names), keyed by unit name.
    /// With [`Detail::Full`] and a `cache` file, the figures of running
    /// units are reused while their invocation (systemd's id of one
    /// activation) is unchanged, so a steady fleet costs no per-unit call.
    pub fn units(
        &self,
        patterns: &[String],
        detail: Detail,
        cache: Option<&DirFd>,
    ) -> Result<BTreeMap<String, UnitInfo>> {
        let none: Vec<String> = Vec::new();
        let list_units = self.method(MANAGER, "ListUnitsByPatterns", &(&none, patterns))?;
        let units: Vec<ListedUnit> = body(
            self.pipeline(&[list_units])?.into_iter().next(),
            "ListUnitsByPatterns",
        )?;

        let mut out = BTreeMap::new();
        let mut paths = Vec::new();
        for (name, _desc, load, active, sub, _following, path, job_id, _jt, _jp) in units {
            paths.push((name.clone(), path));
            out.insert(
                name.clone(),
                UnitInfo {
                    unit: name,
                    load_state: load,
                    active: Active::parse(&active),
                    sub: Sub::parse(&sub),
                    job_id,
                    ..Default::default()
                },
            );
        }
        // Enablement: systemd's own answer for an instance (UnitFileState)
        // is whether an `enable` symlink to it exists in a `.wants/`,
        // `.requires/` or `.upholds/` directory of the configuration paths.
        // `ListUnitFilesByPatterns` lists only the template, and asking
        // each unit costs a round trip, so we read those directories
        // (world-readable, a handful of readdirs) directly. A unit enabled
        // but not loaded still gets a row: it will start at boot.
        for (name, state) in enabled_units(patterns) {
            let e = out.entry(name.clone()).or_insert_with(|| UnitInfo {
                unit: name,
                load_state: "not-loaded".into(),
                active: Active::Inactive,
                sub: Sub::Dead,
                ..Default::default()
            });
            e.unit_file_state = Some(state.into());
        }
        for info in out.values_mut() {
            info.unit_file_state
                .get_or_insert_with(|| "disabled".into());
        }

        match detail {
            Detail::States => {}
            Detail::Progress => self.progress(&mut out, &paths)?,
            Detail::Full => self.details(&mut out, &paths, patterns, cache)?,
        }
        Ok(out)
    }

    /// Main PID and restarts of the loaded units: what tells a unit that
    /// stays up from one systemd keeps restarting (one pipelined burst).
    fn progress(
        &self,
        out: &mut BTreeMap<String, UnitInfo>,
        paths: &[(String, OwnedObjectPath)],
    ) -> Result<()> {
        let mut wanted = Vec::new();
        let mut calls = Vec::new();
        for (name, path) in paths {
            if out.get(name).map_or(true, |u| u.load_state != "loaded") {
                continue;
            }
            for prop in ["MainPID", "NRestarts"] {
                let msg = get_property(path, SERVICE, prop)?;
                calls.push(msg);
                wanted.push((name.clone(), prop));
            }
        }
        for ((name, prop), reply) in wanted.into_iter().zip(self.pipeline(&calls)?) {
            let Some(value) = reply.and_then(|m| m.body().deserialize::<OwnedValue>().ok()) else {
                continue;
            };
            let Some(info) = out.get_mut(&name) else {
                continue;
            };
            match prop {
                "MainPID" => info.main_pid = u32::try_from(value).unwrap_or(0),
                _ => info.restarts = u32::try_from(value).ok(),
            }
        }
        Ok(())
    }

    /// Main PID, restarts, since and memory of the loaded units.
    ///
    /// Running units (`active/running`) whose invocation id is the one in
    /// the cache reuse its main PID, restarts, since (ActiveEnterTimestamp,
    /// fixed for an invocation: every start and auto-restart is a new
    /// invocation) and cgroup. Every other loaded unit is asked over
    /// D-Bus, pipelined. Memory is read from the unit's cgroup
    /// (`memory.current`) for running units, which is what systemd's
    /// MemoryCurrent reports.
    fn details(
        &self,
        out: &mut BTreeMap<String, UnitInfo>,
        paths: &[(String, OwnedObjectPath)],
        patterns: &[String],
        cache_dir: Option<&DirFd>,
    ) -> Result<()> {
        let old: HashMap<String, CacheEntry> = cache_dir.map(load_cache).unwrap_or_default();
        let mut new: HashMap<String, CacheEntry> = HashMap::with_capacity(old.len());
        let mut wanted: Vec<(String, &'static str)> = Vec::new();
        let mut calls = Vec::new();
        let mut invocations: HashMap<String, String> = HashMap::new();
        for (name, path) in paths {
            let info = out.get_mut(name).expect("listed");
            if info.load_state != "loaded" {
                continue;
            }
            let steady = info.active == Active::Active && info.sub == Sub::Running;
            let mut props: Vec<(&str, &'static str)> = Vec::new();
            if steady {
                let inv = invocation_id(name);
                if let (Some(inv), Some(e)) = (&inv, old.get(name)) {
                    if *inv == e.invocation {
                        info.main_pid = e.main_pid;
                        info.restarts = e.restarts;
                        info.since_usec = e.since_usec;
                        info.control_group = e.control_group.clone();
                        new.insert(name.clone(), e.clone());
                        continue;
                    }
                }
                if let Some(inv) = inv {
                    invocations.insert(name.clone(), inv);
                }
                props.extend([
                    (UNIT, "ActiveEnterTimestamp"),
                    (SERVICE, "MainPID"),
                    (SERVICE, "ControlGroup"),
                ]);
            } else {
                props.push((UNIT, "StateChangeTimestamp"));
                if !info.active.is_down() {
                    props.extend([(SERVICE, "MainPID"), (SERVICE, "ControlGroup")]);
                }
            }
            props.push((SERVICE, "NRestarts"));
            for (iface, prop) in props {
                let msg = get_property(path, iface, prop)?;
                calls.push(msg);
                wanted.push((name.clone(), prop));
            }
        }
        let replies = self.pipeline(&calls)?;
        for ((name, prop), reply) in wanted.into_iter().zip(replies) {
            // A unit can vanish between the list and the Get (garbage
            // collected): its property is then simply unknown.
            let Some(msg) = reply else { continue };
            let Ok(value) = msg.body().deserialize::<OwnedValue>() else {
                continue;
            };
            let info = out.get_mut(&name).expect("asked only for listed units");
            match prop {
                "StateChangeTimestamp" | "ActiveEnterTimestamp" => {
                    info.since_usec = u64::try_from(value).ok().filter(|&t| t != 0)
                }
                "NRestarts" => info.restarts = u32::try_from(value).ok(),
                "MainPID" => info.main_pid = u32::try_from(value).unwrap_or(0),
                "ControlGroup" => {
                    info.control_group = String::try_from(value).ok().filter(|s| !s.is_empty())
                }
                _ => {}
            }
        }
        for (name, inv) in invocations {
            let info = &out[&name];
            new.insert(
                name,
                CacheEntry {
                    invocation: inv,
                    main_pid: info.main_pid,
                    restarts: info.restarts,
                    since_usec: info.since_usec,
                    control_group: info.control_group.clone(),
                },
            );
        }
        for info in out.values_mut() {
            if !info.active.is_down() {
                info.memory_bytes = info.control_group.as_deref().and_then(memory_current);
            }
        }
        if let Some(dir) = cache_dir {
            keep_unread_entries(&mut new, &old, patterns);
            if new != old {
                save_cache(dir, &new);
            }
        }
        Ok(())
    }

    /// How the unit's last run ended: systemd's `Result`, the main
    /// process's exit code or signal, and its restart count. `None` when
    /// systemd does not have the unit loaded.
    pub fn service_outcome(&self, unit: &str) -> Result<Option<ServiceOutcome>> {
        let get_unit = self.method(MANAGER, "GetUnit", &(unit,))?;
        let Some(Some(reply)) = self.pipeline(&[get_unit])?.into_iter().next() else {
            return Ok(None);
        };
        let path: OwnedObjectPath = reply
            .body()
            .deserialize()
            .map_err(|e| dbus_err("GetUnit", e))?;
        let props = ["Result", "ExecMainCode", "ExecMainStatus", "NRestarts"];
        let calls = props
            .iter()
            .map(|p| get_property(&path, SERVICE, p))
            .collect::<Result<Vec<_>>>()?;
        let mut values = self
            .pipeline(&calls)?
            .into_iter()
            .map(|reply| reply.and_then(|m| m.body().deserialize::<OwnedValue>().ok()));
        let mut next = || values.next().flatten();
        let result = next().and_then(|v| String::try_from(v).ok());
        let code = next().and_then(|v| i32::try_from(v).ok());
        let status = next().and_then(|v| i32::try_from(v).ok());
        let restarts = next().and_then(|v| u32::try_from(v).ok());
        Ok(Some(ServiceOutcome {
            result,
            main_exit: code
                .zip(status)
                .and_then(|(c, s)| MainExit::from_wait(c, s)),
            restarts,
        }))
    }

    fn method<B>(&self, iface: &str, member: &str, args: &B) -> Result<Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        Message::method_call(PATH, member)
            .and_then(|b| b.destination(DEST))
            .and_then(|b| b.interface(iface))
            .and_then(|b| b.build(args))
            .map_err(|e| dbus_err("building a request", e))
    }

    /// Sends the calls and collects the replies: `Some(reply)` per call,
    /// `None` where systemd answered with an error. At most [`WINDOW`]
    /// calls are in flight at once: the system bus refuses more pending
    /// replies per connection than its `max_replies_per_connection` (128
    /// by default) with `LimitsExceeded`.
    fn pipeline(&self, calls: &[Message]) -> Result<Vec<Option<Message>>> {
        if calls.is_empty() {
            return Ok(Vec::new());
        }
        self.conn.clone().set_max_queued(WINDOW * 2 + 64);
        let mut incoming = MessageIterator::from(&self.conn);
        let mut index: HashMap<NonZeroU32, usize> = HashMap::with_capacity(WINDOW);
        let mut out: Vec<Option<Message>> = vec![None; calls.len()];
        let (mut sent, mut done) = (0, 0);
        while done < calls.len() {
            while sent < calls.len() && sent - done < WINDOW {
                let msg = &calls[sent];
                index.insert(msg.primary_header().serial_num(), sent);
                self.conn
                    .send(msg)
                    .map_err(|e| dbus_err("sending a request", e))?;
                sent += 1;
            }
            let msg = match incoming.next() {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(dbus_err("reading a reply", e)),
                None => {
                    return Err(Error::Dbus {
                        what: "the bus closed the connection".into(),
                    })
                }
            };
            let Some(i) = msg.header().reply_serial().and_then(|s| index.remove(&s)) else {
                continue;
            };
            done += 1;
            if msg.message_type() == MsgType::MethodReturn {
                out[i] = Some(msg);
            }
        }
        Ok(out)
    }
}

/// systemd's object path label back to a unit name: every byte that is not
/// `[A-Za-z0-9]` was written as `_xx` (two lowercase hex digits).
pub fn unescape_label(label: &str) -> Option<String> {
    let b = label.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'_' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A unit name as a label of systemd's object paths: every byte that is
/// not `[A-Za-z0-9]` becomes `_xx` (two lowercase hex digits).
pub fn escape_label(unit: &str) -> String {
    unit.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("_{b:02x}")
            }
        })
        .collect()
}

/// A `Properties.Get` of one property of the unit at `path`.
fn get_property(path: &OwnedObjectPath, iface: &str, prop: &str) -> Result<Message> {
    Message::method_call(path.as_str(), "Get")
        .and_then(|b| b.destination(DEST))
        .and_then(|b| b.interface(PROPS))
        .and_then(|b| b.build(&(iface, prop)))
        .map_err(|e| dbus_err("building a request", e))
}

fn body<T>(reply: Option<Option<Message>>, what: &str) -> Result<T>
where
    T: for<'d> serde::Deserialize<'d> + zbus::zvariant::Type,
{
    let msg = reply.flatten().ok_or_else(|| Error::Dbus {
        what: format!("no reply to {what}"),
    })?;
    msg.body().deserialize::<T>().map_err(|e| dbus_err(what, e))
}

/// Configuration directories whose `<target>.wants/` (etc.) hold `enable`
/// symlinks, with the state a symlink there means.
pub const ENABLE_DIRS: &[(&str, &str)] = &[
    ("/etc/systemd/system", "enabled"),
    ("/run/systemd/system", "enabled-runtime"),
];
const ENABLE_SUFFIXES: &[&str] = &[".wants", ".requires", ".upholds"];

/// Whether a directory named `name` in a configuration directory holds
/// enable links.
pub fn is_link_dir(name: &str) -> bool {
    ENABLE_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The link directories of the configuration directory `base`.
pub fn link_dirs(base: &Path) -> Vec<PathBuf> {
    let Ok(dirs) = std::fs::read_dir(base) else {
        return Vec::new();
    };
    dirs.flatten()
        .filter(|d| d.file_name().to_str().is_some_and(is_link_dir))
        .map(|d| d.path())
        .collect()
}

/// Units matching `patterns` that are enabled, from the symlinks `systemctl
/// enable` creates. Exact names (a command on named instances) are looked
/// up one by one, so that it costs the same however many links there are;
/// only a glob (`status` of all) reads the link directories whole.
pub fn enabled_units(patterns: &[String]) -> BTreeMap<String, &'static str> {
    let exact = patterns.iter().all(|p| !p.contains('*'));
    let mut out = BTreeMap::new();
    for (base, state) in ENABLE_DIRS {
        for dir in link_dirs(Path::new(base)) {
            let found = if exact {
                named_links(&dir, patterns)
            } else {
                listed_links(&dir, patterns)
            };
            for unit in found {
                out.entry(unit).or_insert(*state);
            }
        }
    }
    out
}

/// Which of the unit names `names` have an entry in the link directory `dir`.
fn named_links(dir: &Path, names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| !n.contains('/') && std::fs::symlink_metadata(dir.join(n)).is_ok())
        .cloned()
        .collect()
}

/// The entries of the link directory `dir` that match one of `patterns`.
fn listed_links(dir: &Path, patterns: &[String]) -> Vec<String> {
    let Ok(links) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    links
        .flatten()
        .filter_map(|link| link.file_name().into_string().ok())
        .filter(|unit| patterns.iter().any(|p| glob_match(p, unit)))
        .collect()
}

/// The `*` globs we ask systemd with (`demo@*.service`), or exact names.
fn glob_match(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((pre, post)) => {
            name.len() >= pre.len() + post.len()
                && name.starts_with(pre)
                && name.ends_with(post)
                && !post.contains('*')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{
        escape_label, keep_unread_entries, listed_links, named_links, unescape_label, CacheEntry,
        MainExit,
    };

    #[test]
    fn named_units_are_found_by_name_as_a_glob_finds_them_in_the_listing() {
        let dir = tempfile::tempdir().unwrap();
        for unit in ["demo@a.service", "demo@b.service", "other@a.service"] {
            std::os::unix::fs::symlink("/etc/systemd/system/x@.service", dir.path().join(unit))
                .unwrap();
        }
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let asked = names(&["demo@a.service", "demo@c.service", "other@a.service"]);
        assert_eq!(
            named_links(dir.path(), &asked),
            names(&["demo@a.service", "other@a.service"])
        );
        let mut listed = listed_links(dir.path(), &asked);
        listed.sort();
        assert_eq!(listed, named_links(dir.path(), &asked));
        let mut all = listed_links(dir.path(), &names(&["demo@*.service"]));
        all.sort();
        assert_eq!(all, names(&["demo@a.service", "demo@b.service"]));
        // A name never reaches outside the directory.
        assert!(named_links(dir.path(), &names(&["../x/demo@a.service"])).is_empty());
    }

    #[test]
    fn a_main_process_end_reads_as_systemd_reports_it() {
        // ExecMainCode is a siginfo code: 1 exited, 2 killed, 3 dumped.
        assert_eq!(MainExit::from_wait(1, 3), Some(MainExit::Exited(3)));
        let killed = MainExit::Signal("SIGKILL".into());
        assert_eq!(MainExit::from_wait(2, 9), Some(killed));
        let dumped = MainExit::Signal("SIGSEGV".into());
        assert_eq!(MainExit::from_wait(3, 11), Some(dumped));
        let odd = MainExit::Signal("signal 99".into());
        assert_eq!(MainExit::from_wait(2, 99), Some(odd));
        assert_eq!(MainExit::from_wait(0, 0), None);
    }
    use std::collections::HashMap;

    fn entry(inv: &str) -> CacheEntry {
        CacheEntry {
            invocation: inv.into(),
            main_pid: 1,
            restarts: Some(0),
            since_usec: None,
            control_group: None,
        }
    }

    #[test]
    fn a_named_read_keeps_the_rest_of_the_cache_and_a_full_read_prunes() {
        let old: HashMap<String, CacheEntry> = [
            ("d@a.service".to_string(), entry("1")),
            ("d@b.service".to_string(), entry("2")),
            ("d@gone.service".to_string(), entry("3")),
        ]
        .into();
        // `status a gone`: a refreshed, gone no longer loaded, b untouched.
        let mut new: HashMap<String, CacheEntry> = [("d@a.service".to_string(), entry("9"))].into();
        let named = ["d@a.service".to_string(), "d@gone.service".to_string()];
        keep_unread_entries(&mut new, &old, &named);
        assert_eq!(new["d@a.service"].invocation, "9");
        assert_eq!(new["d@b.service"].invocation, "2");
        assert!(!new.contains_key("d@gone.service"));
        // `status`: what the glob did not see is dropped.
        let mut new: HashMap<String, CacheEntry> = [("d@a.service".to_string(), entry("9"))].into();
        keep_unread_entries(&mut new, &old, &["d@*.service".to_string()]);
        assert_eq!(new.len(), 1);
    }

    use super::*;

    #[test]
    fn unit_paths_decode() {
        assert_eq!(
            unescape_label("demo_40i1_2eservice").as_deref(),
            Some("demo@i1.service")
        );
        assert_eq!(
            unescape_label("left4me_2dserver_40a_5fb_2d3_2eservice").as_deref(),
            Some("left4me-server@a_b-3.service")
        );
        assert_eq!(unescape_label("bad_4"), None);
        assert_eq!(unescape_label("bad_zz"), None);
    }

    #[test]
    fn labels_round_trip() {
        for unit in [
            "demo-task-1000-j_1.service",
            "a@b.scope",
            "left4me-server@a_b-3.service",
        ] {
            let label = escape_label(unit);
            assert!(label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
            assert_eq!(unescape_label(&label).as_deref(), Some(unit));
        }
        assert_eq!(escape_label("a-b.service"), "a_2db_2eservice");
    }

    #[test]
    fn globs() {
        assert!(glob_match("demo@*.service", "demo@a.service"));
        assert!(!glob_match("demo@*.service", "demo@.servic"));
        assert!(!glob_match("demo@*.service", "demox@a.service"));
        assert!(glob_match("demo@a.service", "demo@a.service"));
        assert!(!glob_match("demo@a.service", "demo@ab.service"));
    }
}

/// What the status cache keeps per running unit.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    invocation: String,
    main_pid: u32,
    restarts: Option<u32>,
    since_usec: Option<u64>,
    control_group: Option<String>,
}

/// systemd's current invocation id of a unit: the target of
/// `/run/systemd/units/invocation:<unit>`, new for every activation.
fn invocation_id(unit: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/run/systemd/units/invocation:{unit}")).ok()?;
    let id = link.to_str()?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_owned())
}

fn memory_current(cgroup: &str) -> Option<u64> {
    if cgroup.split('/').any(|c| c == "..") {
        return None;
    }
    let text = std::fs::read_to_string(format!("/sys/fs/cgroup{cgroup}/memory.current")).ok()?;
    text.trim().parse().ok()
}

/// A read of named units (`status web1`) must not forget the rest of the
/// fleet: entries of units it did not ask for are carried over. A read by
/// glob (`status`) saw every unit of the app, so what it did not cache is
/// gone (stopped or deleted) and is dropped.
fn keep_unread_entries(
    new: &mut HashMap<String, CacheEntry>,
    old: &HashMap<String, CacheEntry>,
    patterns: &[String],
) {
    if patterns.iter().any(|p| p.contains(['*', '?', '['])) {
        return;
    }
    for (unit, entry) in old {
        if !patterns.contains(unit) {
            new.entry(unit.clone()).or_insert_with(|| entry.clone());
        }
    }
}

/// The status cache's file in `.locks/`: one per caller, and read only if
/// that caller wrote it. `.locks/` is the service account's to write, and
/// a cache it forged (a chosen main PID for a real invocation id) would
/// make another caller's `status` lie.
fn cache_file() -> std::ffi::OsString {
    format!("status-cache.{}.json", nix::unistd::geteuid()).into()
}
/// Ample for 10,000 running units (about 200 bytes each).
const MAX_CACHE_SIZE: u64 = 16 << 20;

/// Set for a command run as the account on an operator's behalf: the
/// account's own cache is one it could have forged, and the operator must
/// be shown what systemd says.
static DISTRUST_CACHE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// From now on no status cache is read (it is still written).
pub fn distrust_cache() {
    DISTRUST_CACHE.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// An unreadable, damaged or foreign cache is an empty one: it only saves
/// calls.
fn load_cache(dir: &DirFd) -> HashMap<String, CacheEntry> {
    if DISTRUST_CACHE.load(std::sync::atomic::Ordering::Relaxed) {
        return HashMap::new();
    }
    let me = nix::unistd::geteuid().as_raw();
    dir.read_own_file(&cache_file(), MAX_CACHE_SIZE, me)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Best effort: a caller who cannot write the cache just does not cache.
/// A new file renamed over the old one (never a write through whatever
/// the name points at).
fn save_cache(dir: &DirFd, entries: &HashMap<String, CacheEntry>) {
    if let Ok(bytes) = serde_json::to_vec(entries) {
        let _ = dir.replace_file(&cache_file(), 0o600, &bytes);
    }
}
