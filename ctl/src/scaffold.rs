//! `unitgate new-app`: writes a new app — a hardened unit template, its app
//! config, an installer manifest, a skeleton and a README — into a
//! directory for review. It never writes into /etc or a systemd unit
//! directory: the operator reads the files, then installs them with
//! `sudo deploy/install.sh --app DIR/NAME` (the same layout as the reference
//! apps in `deploy/apps/`).
//!
//! ```text
//! unitgate new-app NAME --exec 'CMD ARGS…' [--user U] [--port-range A-B]
//!                  [--memory-max SIZE] [--cpu-quota PCT] [--tasks-max N]
//!                  [--network none|inet] [--profile x11|tmux|inet-in|inet-out]…
//!                  [--dir DIR]
//! ```
//!
//! Names follow the helper's rules (`unitgate_policy::name`).
//!
//! The template scores ≤ 2.0 in `systemd-analyze security` with the defaults
//! (0.2 with `--network none`, 1.1 with `inet`) and with every profile
//! (x11 0.6, tmux 0.2, inet-out 1.1): no capabilities, a
//! read-only OS with only the instance's directory writable, private
//! /tmp, devices, IPC and users, a system-call allow list, and the other
//! settings documented in docs/deploy.md.

use std::path::{Path, PathBuf};

use crate::error::{code, quoted, Error};

pub mod score;
mod template;

/// A refusal of the options (64).
fn usage(message: impl Into<String>) -> Error {
    failed(code::USAGE, message)
}

/// A failure with `new-app`'s own exit code.
fn failed(code: u8, message: impl Into<String>) -> Error {
    Error::Scaffold {
        code,
        message: message.into(),
    }
}

/// Network access of the app's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// `PrivateNetwork=yes`: loopback only, in a namespace of its own.
    #[default]
    None,
    /// IPv4 and IPv6 sockets on the host's network.
    Inet,
    /// Unix sockets only, in the host's network namespace: where an X
    /// server's abstract socket is (`--profile x11`).
    Local,
    /// IPv4 and IPv6 sockets that connect out; `bind()` refused
    /// (`--profile inet-out`).
    InetOut,
}

/// What a service needs beyond the default sandbox, for the common cases
/// that would otherwise take a root drop-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// A client of an X display.
    X11,
    /// A client of the account's tmux server.
    Tmux,
    /// Accepts connections from the network.
    InetIn,
    /// Connects out to the network, never listens.
    InetOut,
}

impl Profile {
    pub const NAMES: [&'static str; 4] = ["x11", "tmux", "inet-in", "inet-out"];
}

impl std::str::FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Profile, Error> {
        match s {
            "x11" => Ok(Profile::X11),
            "tmux" => Ok(Profile::Tmux),
            "inet-in" => Ok(Profile::InetIn),
            "inet-out" => Ok(Profile::InetOut),
            _ => Err(usage(format!(
                "--profile must be one of {}, not '{}'",
                Profile::NAMES.join(", "),
                quoted(s)
            ))),
        }
    }
}

impl std::str::FromStr for Network {
    type Err = Error;
    fn from_str(s: &str) -> Result<Network, Error> {
        match s {
            "none" => Ok(Network::None),
            "inet" => Ok(Network::Inet),
            _ => Err(usage(format!("--network must be none or inet, not '{s}'"))),
        }
    }
}

/// The options of `unitgate new-app`.
#[derive(Debug, Clone, Default)]
pub struct NewApp {
    /// App name: the config's file name, the unit's prefix (`NAME@.service`).
    pub name: String,
    /// The command line each instance runs. The program is an absolute path
    /// or found in `PATH` now; `${PORT}`, `${INSTANCE}` and any variable of
    /// the instance's environment file may be used in the arguments.
    pub exec: String,
    /// Service account (default: the app name).
    pub user: Option<String>,
    /// One port per instance from this inclusive range (`PORT`).
    pub port_range: Option<(u16, u16)>,
    /// `MemoryMax=` (default 512M).
    pub memory_max: Option<String>,
    /// `CPUQuota=` (default 100%).
    pub cpu_quota: Option<String>,
    /// `TasksMax=` (default 256).
    pub tasks_max: Option<u32>,
    /// Network (default: none, or inet when a port range is given).
    pub network: Option<Network>,
    /// `--profile`s, in any order.
    pub profiles: Vec<Profile>,
}

/// One generated file, relative to the app's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: PathBuf,
    pub contents: String,
    pub mode: u32,
}

/// The generated app.
#[derive(Debug, Clone)]
pub struct Scaffold {
    pub name: String,
    pub user: String,
    pub files: Vec<File>,
}

/// Parses `A-B` (inclusive, 1 ≤ A ≤ B ≤ 65535).
pub fn parse_port_range(s: &str) -> Result<(u16, u16), Error> {
    let bad = || {
        usage(format!(
            "--port-range must be LOW-HIGH with 1 <= LOW <= HIGH <= 65535, not '{s}'"
        ))
    };
    let (lo, hi) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = lo.trim().parse().map_err(|_| bad())?;
    let hi: u16 = hi.trim().parse().map_err(|_| bad())?;
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// The helper's own app-name rule (it names the policy file and the unit).
fn check_app_name(name: &str) -> Result<(), Error> {
    if unitgate_policy::name::is_valid_app(name) {
        Ok(())
    } else {
        Err(usage(format!(
            "app name '{}' must match [a-z0-9][a-z0-9_-]{{0,63}} (it names the unit NAME@.service and the config NAME.toml)",
            quoted(name)
        )))
    }
}

fn check_user(user: &str) -> Result<(), Error> {
    if !unitgate_policy::name::is_valid_user(user) {
        return Err(usage(format!(
            "user '{}' must match [a-z_][a-z0-9_-]{{0,31}} (pass --user when the app name does not)",
            quoted(user)
        )));
    }
    if user == "root" {
        return Err(usage(
            "--user root is refused: a hardened template runs as its own service account",
        ));
    }
    Ok(())
}

/// `512M`, `2G`, `1073741824`, `80%`, `infinity`.
fn check_memory(s: &str) -> Result<(), Error> {
    let digits_then = |rest: &str, suffixes: &[&str]| {
        let n = rest.trim_end_matches(|c: char| c.is_ascii_alphabetic() || c == '%');
        let suffix = &rest[n.len()..];
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && suffixes.contains(&suffix)
    };
    if s == "infinity" || digits_then(s, &["", "K", "M", "G", "T", "%"]) {
        Ok(())
    } else {
        Err(usage(format!(
            "--memory-max must be like 512M, 2G, 80% or infinity, not '{}'",
            quoted(s)
        )))
    }
}

fn check_cpu_quota(s: &str) -> Result<(), Error> {
    match s.strip_suffix('%') {
        Some(n)
            if !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_digit())
                && n != "0"
                && !n.starts_with('0') =>
        {
            Ok(())
        }
        _ => Err(usage(format!(
            "--cpu-quota must be a percentage like 50% or 200%, not '{}'",
            quoted(s)
        ))),
    }
}

/// Finds `program` the way a shell would (for `--exec` without a path).
pub fn resolve_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The command `unitgate launch` runs: the program made absolute, `%` and
/// `$` escaped for systemd (so the command means what it says; instance data
/// come from the environment file, through `launch`).
fn exec_start(exec: &str, resolve: &dyn Fn(&str) -> Option<PathBuf>) -> Result<String, Error> {
    if exec.chars().any(|c| c.is_control()) {
        return Err(usage("--exec must be one line without control characters"));
    }
    let exec = exec.trim();
    let (program, args) = match exec.split_once(char::is_whitespace) {
        Some((p, a)) => (p, a.trim_start()),
        None => (exec, ""),
    };
    if program.is_empty() {
        return Err(usage(
            "--exec needs a command, e.g. --exec '/usr/bin/myserver --port ${PORT}'",
        ));
    }
    if program.contains(['\'', '"', '\\', '$', '%']) {
        return Err(usage(format!(
            "--exec: the program '{}' must be a plain path",
            quoted(program)
        )));
    }
    let program = if program.starts_with('/') {
        program.to_owned()
    } else if program.contains('/') {
        return Err(usage(format!(
            "--exec: '{}' must be an absolute path or a command in PATH",
            quoted(program)
        )));
    } else {
        match resolve(program) {
            Some(p) => p.to_string_lossy().into_owned(),
            None => {
                return Err(usage(format!(
                    "--exec: '{}' is not in PATH; give its absolute path",
                    quoted(program)
                )))
            }
        }
    };
    let line = if args.is_empty() {
        program
    } else {
        // `$` doubled: `unitgate launch`, not systemd, expands `${NAME}`
        // from the instance's environment file (systemd would replace it
        // with nothing).
        format!("{program} {}", args.replace('$', "$$"))
    };
    Ok(line.replace('%', "%%"))
}

/// Renders the app without touching the file system (`resolve` finds a
/// program named without a path; [`resolve_in_path`] in the CLI).
pub fn render(opts: &NewApp, resolve: &dyn Fn(&str) -> Option<PathBuf>) -> Result<Scaffold, Error> {
    let name = opts.name.as_str();
    check_app_name(name)?;
    let user = opts.user.clone().unwrap_or_else(|| name.to_owned());
    check_user(&user)?;
    let exec = exec_start(&opts.exec, resolve)?;
    let memory_max = opts.memory_max.clone().unwrap_or_else(|| "512M".to_owned());
    check_memory(&memory_max)?;
    let cpu_quota = opts.cpu_quota.clone().unwrap_or_else(|| "100%".to_owned());
    check_cpu_quota(&cpu_quota)?;
    let tasks_max = opts.tasks_max.unwrap_or(256);
    if tasks_max == 0 {
        return Err(usage("--tasks-max must be at least 1"));
    }
    let network = network_of(opts)?;
    let tmux = opts.profiles.contains(&Profile::Tmux);

    let home = format!("/var/lib/{name}");
    let state_dir = format!("{home}/instances");
    let unit_file = format!("{name}@.service");
    let network_wants = match network {
        Network::None | Network::Local => "",
        Network::Inet | Network::InetOut => {
            "After=network-online.target\nWants=network-online.target"
        }
    };
    let network_section = match (network, opts.port_range) {
        (Network::None, _) => "# Network: none (loopback in a namespace of its own).\n\
             PrivateNetwork=yes\n\
             RestrictAddressFamilies=AF_UNIX\n\
             IPAddressDeny=any"
            .to_owned(),
        (Network::Local, _) => {
            "# Network: Unix sockets only, in the host's network namespace, where\n\
             # an X server's abstract socket (@/tmp/.X11-unix/XN) is; no IP at all.\n\
             RestrictAddressFamilies=AF_UNIX\n\
             IPAddressDeny=any"
                .to_owned()
        }
        // SocketBindDeny= needs cgroup BPF: say where it does nothing rather
        // than pretend.
        (Network::InetOut, _) => {
            "# Network: connects out over IPv4/IPv6, never listens: bind() is refused\n\
             # where systemd can attach cgroup BPF programs: systemd 250 or later\n\
             # built with them and libbpf installed (Debian 13: libbpf1), on a VM\n\
             # or a host. Elsewhere (Debian 12's systemd, a container) it is\n\
             # ignored, silently. systemd 250-255 enforce a deny list only beside\n\
             # an allow rule (systemd issue 30556): the one allowed, TCP port 1\n\
             # over IPv4, is a privileged port this unit cannot bind anyway.\n\
             RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n\
             SocketBindAllow=ipv4:tcp:1\n\
             SocketBindDeny=any"
                .to_owned()
        }
        // Ports are a convention, not SocketBindAllow=: that needs systemd's
        // BPF support, which containers lack and then silently ignore.
        (Network::Inet, range) => {
            let mut section = "# Network: IPv4/IPv6 on the host's network.\n\
                 RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6"
                .to_owned();
            if let Some((lo, hi)) = range {
                section += &format!(
                    "\n# Each instance listens on its PORT from {lo}-{hi} (instance.env)."
                );
            }
            section
        }
    };
    let (port_range, port_line) = match opts.port_range {
        Some((lo, hi)) => (
            format!("port_range = [{lo}, {hi}]"),
            format!("Each instance gets its own `PORT` from {lo}-{hi}."),
        ),
        None => (String::new(), String::new()),
    };
    let tasks_max = tasks_max.to_string();
    let tmux_dir = format!("{home}/tmux");
    let (tmux_settings, extra_dirs) = if tmux {
        (
            format!(
                "# tmux: the account's tmux server has its socket in {tmux_dir}, not in\n\
                 # the private /tmp; attach with\n\
                 #   sudo -u {user} env TMUX_TMPDIR={tmux_dir} tmux attach\n\
                 Environment=TMUX_TMPDIR={tmux_dir}\n\
                 ReadWritePaths={tmux_dir}"
            ),
            format!(" {tmux_dir}"),
        )
    } else {
        (String::new(), String::new())
    };
    let profile_env = if opts.profiles.contains(&Profile::X11) {
        "# The display and its cookie (readable by the account, outside /home), e.g.\n\
         # DISPLAY = \":{instance}\"\n\
         # XAUTHORITY = \"/run/mydisplay/{instance}/xauthority\""
    } else {
        ""
    };
    let profile_line = profile_summary(&opts.profiles, &user, &tmux_dir);
    let values: &[(&str, &str)] = &[
        ("name", name),
        ("user", &user),
        ("home", &home),
        ("state_dir", &state_dir),
        ("unit_file", &unit_file),
        ("exec", &exec),
        ("memory_max", &memory_max),
        ("cpu_quota", &cpu_quota),
        ("tasks_max", &tasks_max),
        ("network_wants", network_wants),
        ("network", &network_section),
        ("port_range", &port_range),
        ("port_line", &port_line),
        ("profile_settings", &tmux_settings),
        ("extra_dirs", &extra_dirs),
        ("profile_env", profile_env),
        ("profile_line", &profile_line),
    ];
    let file = |path: &str, template: &str| File {
        path: PathBuf::from(path),
        contents: template::fill(template, values),
        mode: 0o644,
    };

    Ok(Scaffold {
        name: name.to_owned(),
        files: vec![
            file("app.toml", template::APP_TOML),
            file(&unit_file, template::UNIT),
            file("install.conf", template::INSTALL_CONF),
            file("skeleton/README", template::SKELETON_README),
            file("README.md", template::README),
        ],
        user,
    })
}

/// The network the options ask for. `--network` is the older spelling:
/// `inet` is `--profile inet-in`, `none` refuses every network profile.
fn network_of(opts: &NewApp) -> Result<Network, Error> {
    let wants = |p: Profile| opts.profiles.contains(&p);
    let from_profiles = match (wants(Profile::InetIn), wants(Profile::InetOut)) {
        (true, true) => {
            return Err(usage(
                "--profile inet-in and inet-out exclude each other (inet-in connects out too)",
            ))
        }
        (true, false) => Some(Network::Inet),
        (false, true) => Some(Network::InetOut),
        (false, false) if wants(Profile::X11) => Some(Network::Local),
        (false, false) => None,
    };
    let network = match (opts.network, from_profiles) {
        (Some(Network::None), Some(_)) => {
            return Err(usage(
                "--network none refuses --profile x11, inet-in and inet-out (each needs the host's network namespace)",
            ))
        }
        (Some(Network::Inet), Some(Network::InetOut)) => {
            return Err(usage(
                "--network inet listens, --profile inet-out never does: choose one",
            ))
        }
        // x11 beside inet: Internet sockets include what x11 needs.
        (Some(Network::Inet), _) => Network::Inet,
        (Some(n), None) => n,
        (_, Some(n)) => n,
        (None, None) => Network::None,
    };
    match (network, opts.port_range) {
        (_, None) | (Network::Inet, Some(_)) => Ok(network),
        // A port range with no network asked for asks for a listening one.
        (Network::None | Network::Local, Some(_)) if opts.network.is_none() => Ok(Network::Inet),
        _ => Err(usage(
            "--port-range needs --profile inet-in (a port nobody can reach, or one never listened on, serves nobody)",
        )),
    }
}

/// One line per profile for the README: what it gives and how it is used.
fn profile_summary(profiles: &[Profile], user: &str, tmux_dir: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    for p in profiles {
        let line = match p {
            Profile::X11 => {
                "- `x11`: reaches an X display through its abstract socket in the host's \
                 network namespace (Unix sockets only, no IP); set `DISPLAY` and `XAUTHORITY` \
                 in `app.toml`'s `[env]` or with `init --set`."
                    .to_owned()
            }
            Profile::Tmux => format!(
                "- `tmux`: the account's tmux server lives in `{tmux_dir}` (`TMUX_TMPDIR`), \
                 not in the private /tmp; attach with \
                 `sudo -u {user} env TMUX_TMPDIR={tmux_dir} tmux attach`."
            ),
            Profile::InetIn => {
                "- `inet-in`: IPv4/IPv6 on the host's network, listening allowed.".to_owned()
            }
            Profile::InetOut => {
                "- `inet-out`: connects out over IPv4/IPv6; `SocketBindDeny=any` refuses \
                 `bind()` where systemd has cgroup BPF (not in containers)."
                    .to_owned()
            }
        };
        if !lines.contains(&line) {
            lines.push(line);
        }
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("\nProfiles:\n\n{}", lines.join("\n"))
}

/// Places a scaffold must never be written to directly: the live config and
/// the unit directories systemd reads.
const LIVE_DIRS: [&str; 8] = [
    "/etc",
    "/run/systemd",
    "/usr/lib/systemd",
    "/lib/systemd",
    "/usr/local/lib/systemd",
    "/usr/lib/unitgate",
    "/usr/local/lib/unitgate",
    "/var/lib/unitgate",
];

/// Lexically absolute, without `.`/`..` (no symlinks resolved).
fn absolute(dir: &Path) -> Result<PathBuf, Error> {
    let base = if dir.is_absolute() {
        PathBuf::new()
    } else {
        std::env::current_dir().map_err(|e| {
            failed(
                code::IO_ERR,
                format!("cannot read the current directory ({e})"),
            )
        })?
    };
    let mut out = PathBuf::from("/");
    for c in base.join(dir).components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    Ok(out)
}

/// Writes the scaffold into `out_dir/NAME/` (created; must not exist yet)
/// and returns that directory. Refuses anywhere under /etc or a systemd
/// unit directory: installing is a separate, reviewed step.
pub fn write(scaffold: &Scaffold, out_dir: &Path) -> Result<PathBuf, Error> {
    let out = absolute(out_dir)?;
    let resolved = std::fs::canonicalize(&out).unwrap_or_else(|_| out.clone());
    for live in LIVE_DIRS {
        if out.starts_with(live) || resolved.starts_with(live) {
            return Err(usage(format!(
                "refusing to write into {} (under {live}): new-app writes files for review; install them with deploy/install.sh --app",
                out.display()
            )));
        }
    }
    let app_dir = out.join(&scaffold.name);
    let io = |what: &str, p: &Path, e: std::io::Error| {
        failed(code::IO_ERR, format!("cannot {what} {} ({e})", p.display()))
    };
    // Everything below `out` is created new and relative to it, never
    // through a link: `new-app` may run as root in a directory others share.
    let walked = crate::walk::open_dir(&out, crate::walk::Missing::Create(0o755))?;
    let (parent, walk) =
        walked.ok_or_else(|| io("create", &out, std::io::ErrorKind::NotFound.into()))?;
    // Whoever else could rename an entry on the way could swap the files
    // for their own before they are reviewed and installed: only directories
    // of root's or ours, or sticky ones (like /tmp), where entries of ours
    // stay ours.
    let me = nix::unistd::geteuid().as_raw();
    if let Some(p) = walk.passed.iter().find(|p| {
        let sticky = p.mode & 0o1000 != 0;
        (p.uid != 0 && p.uid != me) || (p.mode & 0o022 != 0 && !sticky) || p.fuse
    }) {
        return Err(failed(code::NO_PERM, format!(
                "refusing to write into {}: {} can be changed by another account, which could swap the files before you review them",
                out.display(),
                p.path.display()
            ),
        ));
    }
    let dir = match parent.create_dir(scaffold.name.as_ref(), 0o755) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(failed(
                code::EXISTS,
                format!(
                    "{} already exists: remove it or choose another --dir",
                    app_dir.display()
                ),
            ));
        }
        Err(e) => return Err(io("create", &app_dir, e)),
    };
    for file in &scaffold.files {
        let path = app_dir.join(&file.path);
        let (sub, name) = match (file.path.parent(), file.path.file_name()) {
            (Some(p), Some(n)) if !p.as_os_str().is_empty() => {
                let sub = dir
                    .ensure_dir(p.as_os_str(), 0o755)
                    .map_err(|e| io("create", &app_dir.join(p), e))?;
                (Some(sub), n)
            }
            (_, Some(n)) => (None, n),
            _ => return Err(io("create", &path, std::io::ErrorKind::InvalidInput.into())),
        };
        let target = sub.as_ref().unwrap_or(&dir);
        let mut f = target
            .create_file(name, file.mode)
            .map_err(|e| io("create", &path, e))?;
        std::io::Write::write_all(&mut f, file.contents.as_bytes())
            .map_err(|e| io("write", &path, e))?;
        // The umask must not decide what install.sh copies.
        nix::sys::stat::fchmod(&f, nix::sys::stat::Mode::from_bits_truncate(file.mode))
            .map_err(|e| io("chmod", &path, e.into()))?;
    }
    Ok(app_dir)
}

/// `render` with programs resolved in `PATH`, then `write`.
pub fn run(opts: &NewApp, out_dir: &Path) -> Result<PathBuf, Error> {
    let scaffold = render(opts, &resolve_in_path)?;
    write(&scaffold, out_dir)
}

/// What to tell the operator after writing (human output of the command),
/// with the template's measured exposure score.
pub fn next_steps(opts: &NewApp, app_dir: &Path, score: &Result<f64, String>) -> String {
    let user = opts.user.clone().unwrap_or_else(|| opts.name.clone());
    let score = match score {
        Ok(level) => {
            format!("systemd-analyze security (offline): {level:.1} (scaffolds stay at most 2.0)")
        }
        Err(why) => format!("systemd-analyze security: not measured: {why}"),
    };
    format!(
        "wrote {dir}/ (app.toml, {name}@.service, install.conf, skeleton/, README.md)\n\
         {score}\n\
         next: review them, then\n  sudo deploy/install.sh --app-only --app {dir}\n  \
         unitgate --app {name} init one && unitgate --app {name} start one   # as {user}\n",
        dir = app_dir.display(),
        name = opts.name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(name: &str, exec: &str) -> NewApp {
        NewApp {
            name: name.into(),
            exec: exec.into(),
            ..Default::default()
        }
    }

    fn no_path(_: &str) -> Option<PathBuf> {
        None
    }

    fn file<'a>(s: &'a Scaffold, name: &str) -> &'a str {
        &s.files
            .iter()
            .find(|f| f.path == Path::new(name))
            .unwrap()
            .contents
    }

    #[test]
    fn port_ranges_parse_or_are_usage_errors() {
        assert_eq!(parse_port_range("27015-27115").unwrap(), (27015, 27115));
        assert_eq!(parse_port_range("80-80").unwrap(), (80, 80));
        for bad in ["", "1", "0-5", "5-1", "1-70000", "a-b", "1-2-3", "-5"] {
            assert_eq!(
                parse_port_range(bad).unwrap_err().code(),
                code::USAGE,
                "{bad}"
            );
        }
    }

    #[test]
    fn default_template_is_hardened_and_networkless() {
        let s = render(&opts("echo-app", "/bin/sleep infinity"), &no_path).unwrap();
        let unit = file(&s, "echo-app@.service");
        for want in [
            "User=echo-app",
            "ExecStart=@PREFIX@/bin/unitgate --app echo-app launch %i -- /bin/sleep infinity\n",
            "RestartPreventExitStatus=64 65 66 77 78\n",
            "ReadWritePaths=/var/lib/echo-app/instances/%i",
            "KillMode=control-group",
            "PrivateTmp=yes",
            "PrivateIPC=yes",
            "Restart=on-failure",
            "TimeoutStopSec=30s",
            "MemoryMax=512M",
            "CPUQuota=100%",
            "TasksMax=256",
            "PrivateNetwork=yes",
            "CapabilityBoundingSet=\n",
            "WantedBy=multi-user.target",
        ] {
            assert!(unit.contains(want), "missing {want:?} in\n{unit}");
        }
        assert!(!unit.contains("%I"), "templates use %i only");
        for unsafe_for_root in [
            "EnvironmentFile=",
            "BindReadOnlyPaths=",
            "LoadCredential=",
            "AssertPath",
        ] {
            assert!(
                !unit.contains(unsafe_for_root),
                "PID 1 must not read the account's files: {unit}"
            );
        }
        let toml = file(&s, "app.toml");
        assert!(toml.contains("unit = \"echo-app@.service\""));
        assert!(toml.contains("callers = [\"echo-app\"]"));
        assert!(!toml.contains("port_range"));
        assert!(file(&s, "install.conf").contains("account=echo-app\n"));
    }

    #[test]
    fn options_shape_the_template() {
        let mut o = opts("game", "srv --port ${PORT} --name ${INSTANCE}");
        o.user = Some("gamer".into());
        o.port_range = Some((4000, 4010));
        o.memory_max = Some("2G".into());
        let resolve = |p: &str| (p == "srv").then(|| PathBuf::from("/opt/game/bin/srv"));
        let s = render(&o, &resolve).unwrap();
        let unit = file(&s, "game@.service");
        assert!(
            unit.contains("launch %i -- /opt/game/bin/srv --port $${PORT} --name $${INSTANCE}\n"),
            "{unit}"
        );
        assert!(unit.contains("User=gamer\n") && unit.contains("MemoryMax=2G\n"));
        assert!(unit.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"));
        assert!(unit.contains("PORT from 4000-4010"));
        assert!(!unit.contains("PrivateNetwork=yes"));
        assert!(file(&s, "app.toml").contains("port_range = [4000, 4010]\n"));
    }

    fn with_profiles(profiles: &[Profile]) -> NewApp {
        NewApp {
            profiles: profiles.to_vec(),
            ..opts("prof", "/bin/sleep infinity")
        }
    }

    #[test]
    fn each_profile_opens_only_what_it_names() {
        let x11 = render(&with_profiles(&[Profile::X11]), &no_path).unwrap();
        let unit = file(&x11, "prof@.service");
        assert!(!unit.contains("PrivateNetwork=yes"), "{unit}");
        assert!(unit.contains("RestrictAddressFamilies=AF_UNIX\nIPAddressDeny=any\n"));
        assert!(
            unit.contains("PrivateTmp=yes"),
            "x11 keeps its private /tmp"
        );
        assert!(file(&x11, "app.toml").contains("# DISPLAY = \":{instance}\""));

        let tmux = render(&with_profiles(&[Profile::Tmux]), &no_path).unwrap();
        let unit = file(&tmux, "prof@.service");
        assert!(unit.contains("PrivateNetwork=yes") && unit.contains("PrivateTmp=yes"));
        assert!(unit.contains("Environment=TMUX_TMPDIR=/var/lib/prof/tmux\n"));
        assert!(unit.contains("ReadWritePaths=/var/lib/prof/tmux\n"));
        assert!(file(&tmux, "install.conf")
            .contains("dirs=/var/lib/prof /var/lib/prof/instances /var/lib/prof/tmux\n"));
        assert!(file(&tmux, "README.md").contains("TMUX_TMPDIR=/var/lib/prof/tmux tmux attach"));

        let out = render(&with_profiles(&[Profile::InetOut]), &no_path).unwrap();
        let unit = file(&out, "prof@.service");
        assert!(
            unit.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\nSocketBindAllow=ipv4:tcp:1\nSocketBindDeny=any\n")
        );
        assert!(!unit.contains("PrivateNetwork=yes") && !unit.contains("TMUX_TMPDIR"));

        let inet = render(&with_profiles(&[Profile::InetIn, Profile::X11]), &no_path).unwrap();
        let unit = file(&inet, "prof@.service");
        assert!(unit.contains("RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n"));
        assert!(!unit.contains("SocketBindDeny") && !unit.contains("IPAddressDeny"));

        // Without a profile, nothing of theirs.
        let plain = render(&opts("prof", "/bin/true"), &no_path).unwrap();
        let unit = file(&plain, "prof@.service");
        assert!(!unit.contains("TMUX_TMPDIR") && !unit.contains("SocketBindDeny"));
        assert!(!file(&plain, "README.md").contains("Profiles:"));
        assert!(
            file(&plain, "install.conf").contains("dirs=/var/lib/prof /var/lib/prof/instances\n")
        );
    }

    #[test]
    fn contradicting_profiles_are_usage_errors() {
        let cases = [
            with_profiles(&[Profile::InetIn, Profile::InetOut]),
            NewApp {
                network: Some(Network::None),
                ..with_profiles(&[Profile::X11])
            },
            NewApp {
                network: Some(Network::Inet),
                ..with_profiles(&[Profile::InetOut])
            },
            NewApp {
                port_range: Some((4000, 4001)),
                ..with_profiles(&[Profile::InetOut])
            },
        ];
        for o in cases {
            let e = render(&o, &no_path).unwrap_err();
            assert_eq!(e.code(), code::USAGE, "{o:?}: {e}");
        }
        // A port range beside x11 asks for a listening network, which x11's
        // needs are part of.
        let o = NewApp {
            port_range: Some((4000, 4001)),
            ..with_profiles(&[Profile::X11])
        };
        let unit = file(&render(&o, &no_path).unwrap(), "prof@.service").to_owned();
        assert!(
            unit.contains("AF_INET6\n# Each instance listens on its PORT"),
            "{unit}"
        );
        assert!("wifi".parse::<Profile>().is_err());
        for name in Profile::NAMES {
            assert!(name.parse::<Profile>().is_ok());
        }
    }

    #[test]
    fn percent_signs_are_escaped_for_systemd() {
        let s = render(&opts("pct", "/bin/echo 100%"), &no_path).unwrap();
        assert!(file(&s, "pct@.service").contains("launch %i -- /bin/echo 100%%\n"));
    }

    #[test]
    fn bad_input_is_a_usage_error() {
        let cases: Vec<NewApp> = vec![
            opts("Bad", "/bin/true"),
            opts("-x", "/bin/true"),
            opts("a/b", "/bin/true"),
            opts("ok", ""),
            opts("ok", "relative/prog"),
            opts("ok", "not-in-path"),
            opts("ok", "/bin/true\nExecStartPre=/bin/sh"),
            NewApp {
                user: Some("root".into()),
                ..opts("ok", "/bin/true")
            },
            NewApp {
                user: Some("Bad User".into()),
                ..opts("ok", "/bin/true")
            },
            NewApp {
                memory_max: Some("lots".into()),
                ..opts("ok", "/bin/true")
            },
            NewApp {
                cpu_quota: Some("50".into()),
                ..opts("ok", "/bin/true")
            },
            NewApp {
                tasks_max: Some(0),
                ..opts("ok", "/bin/true")
            },
            NewApp {
                port_range: Some((1, 2)),
                network: Some(Network::None),
                ..opts("ok", "/bin/true")
            },
        ];
        for o in cases {
            let e = render(&o, &no_path).unwrap_err();
            assert_eq!(e.code(), code::USAGE, "{o:?}: {e}");
            assert!(!e.to_string().contains('\n'), "one-line messages: {e}");
        }
        assert_eq!("inet".parse::<Network>().unwrap(), Network::Inet);
        assert!("wifi".parse::<Network>().is_err());
    }

    #[test]
    fn write_refuses_live_config_and_existing_dirs() {
        let s = render(&opts("demo", "/bin/true"), &no_path).unwrap();
        for dir in [
            "/etc",
            "/etc/unitgate/apps",
            "/usr/lib/systemd/system",
            "/tmp/../etc/systemd",
        ] {
            let e = write(&s, Path::new(dir)).unwrap_err();
            assert_eq!(e.code(), code::USAGE, "{dir}: {e}");
        }
        let base = std::env::temp_dir().join(format!("unitgate-scaffold-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let dir = write(&s, &base).unwrap();
        assert_eq!(dir, base.join("demo"));
        for f in [
            "app.toml",
            "demo@.service",
            "install.conf",
            "skeleton/README",
            "README.md",
        ] {
            assert!(dir.join(f).is_file(), "{f}");
        }
        assert_eq!(write(&s, &base).unwrap_err().code(), code::EXISTS);
        std::fs::remove_dir_all(&base).unwrap();
    }
}
