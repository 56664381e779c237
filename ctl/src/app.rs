//! The app config, CLI side, and app selection.
//!
//! One file per app, `/etc/unitgate/apps/<app>.toml`, shared with the
//! helper: the helper's keys (`unit`, `instance_pattern`, `callers`,
//! `actions`) are parsed and validated by the helper crate itself, the
//! CLI's keys (`unitgate_policy::config::CLI_KEYS` and `CLI_TABLES`) here,
//! from the same parsed document.

use std::path::{Path, PathBuf};

use unitgate_policy::caller::Caller;
use unitgate_policy::config::{self as policy, Policy};
use unitgate_policy::toml::{self, Document, Entry, Value};

use crate::error::{quoted, Error, Result};
use crate::name::InstanceName;

/// Environment variable that selects the app when `--app` is not given.
pub const APP_ENV: &str = "UNITGATE_APP";
/// The instance environment file's name when the config names none.
pub const DEFAULT_ENV_FILE: &str = "instance.env";
/// How long a started instance must stay up when the config says nothing:
/// long enough to catch a program that is missing or dies at once, short
/// enough for a click in a web app.
pub const DEFAULT_SETTLE_SECS: u64 = 2;
/// The variable a port from `port_range` is written to.
pub const PORT_VAR: &str = "PORT";

/// A loaded app: the helper's policy plus the CLI's keys.
#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    pub config_path: PathBuf,
    pub policy: Policy,
    /// Where instances live: `<state_dir>/<instance>/`.
    pub state_dir: PathBuf,
    /// Copied into each new instance, if set.
    pub skeleton_dir: Option<PathBuf>,
    /// File name of the environment file inside each instance directory.
    pub env_file: String,
    /// Inclusive range a unique `PORT` is allocated from.
    pub port_range: Option<(u16, u16)>,
    /// argv of `unitgate install`, run as the caller.
    pub install_command: Option<Vec<String>>,
    /// Seconds `stop`/`delete` allow an instance to take to stop (passed to
    /// the instance as `UNITGATE_STOP_TIMEOUT`, for `TimeoutStopSec=`-style use).
    pub stop_timeout: Option<u64>,
    /// Seconds a started instance must stay up to count as started
    /// (`settle`, default [`DEFAULT_SETTLE_SECS`]; `--settle` per call).
    pub settle: std::time::Duration,
    /// `[env]`: variables written to each instance's environment file.
    pub env: Vec<(String, Template)>,
}

impl App {
    /// `<prefix>@<instance>.service`: both parts passed their rules (the
    /// prefix when the policy was read, the name when it was made), so this
    /// is the name the helper builds and checks byte for byte.
    pub fn unit(&self, instance: &InstanceName) -> String {
        format!(
            "{}@{}{}",
            self.policy.unit_prefix,
            instance,
            unitgate_policy::name::SERVICE_SUFFIX
        )
    }

    /// The pattern systemd is asked about: `<prefix>@*.service`.
    pub fn unit_glob(&self) -> String {
        format!("{}@*.service", self.policy.unit_prefix)
    }

    /// The instance of a unit of this app, if it is one with a name this
    /// app allows.
    pub fn instance_of(&self, unit: &str) -> Option<InstanceName> {
        let rest = unit
            .strip_prefix(self.policy.unit_prefix.as_str())?
            .strip_prefix('@')?;
        let inst = rest.strip_suffix(unitgate_policy::name::SERVICE_SUFFIX)?;
        self.instance(inst).ok()
    }

    /// The one way to make an [`InstanceName`]: the helper crate's rules
    /// (built-in rule and the app's `instance_pattern`), checked before any
    /// path is built or any call is made.
    pub fn instance(&self, name: &str) -> Result<InstanceName> {
        if self.policy.allows_instance(name) {
            return Ok(InstanceName::checked(name));
        }
        let rule = if unitgate_policy::name::is_valid_instance(name) {
            format!(
                "must match this app's instance_pattern in {}",
                self.config_path.display()
            )
        } else {
            "use 1 to 64 of A-Z a-z 0-9 _ -, not starting with _ or -".to_owned()
        };
        Err(Error::BadName {
            kind: "instance",
            name: name.to_owned(),
            rule,
        })
    }

    /// Every name checked before anything is touched (one bad name rejects
    /// the whole command, exit 65, as the helper does); duplicates once.
    pub fn instances(&self, names: &[String]) -> Result<Vec<InstanceName>> {
        let mut out: Vec<InstanceName> = Vec::with_capacity(names.len());
        for n in names {
            let name = self.instance(n)?;
            if !out.contains(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    pub fn instance_dir(&self, instance: &InstanceName) -> PathBuf {
        self.state_dir.join(instance.as_str())
    }
}

/// A value of `[env]`: literal text with `{instance}`, `{port}`,
/// `{state_dir}`, `{instance_dir}`, `{app}` placeholders (`{{`/`}}` for
/// literal braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Piece>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Var),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Instance,
    Port,
    StateDir,
    InstanceDir,
    App,
}

impl Var {
    const ALL: [(&'static str, Var); 5] = [
        ("instance", Var::Instance),
        ("port", Var::Port),
        ("state_dir", Var::StateDir),
        ("instance_dir", Var::InstanceDir),
        ("app", Var::App),
    ];
}

/// What a template is expanded with.
pub struct Context<'a> {
    pub app: &'a str,
    pub instance: &'a str,
    pub state_dir: &'a Path,
    pub instance_dir: &'a Path,
    pub port: Option<u16>,
}

impl Template {
    pub fn parse(s: &str) -> std::result::Result<Template, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("unclosed `{{{name}`")),
                        }
                    }
                    let var = Var::ALL.iter().find(|(n, _)| *n == name).map(|(_, v)| *v).ok_or_else(|| {
                        format!(
                            "unknown placeholder `{{{name}}}` (known: {{instance}}, {{port}}, {{state_dir}}, {{instance_dir}}, {{app}}; write {{{{ for a literal brace)"
                        )
                    })?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(var));
                }
                '}' => return Err("lone `}` (write }} for a literal brace)".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    pub fn uses(&self, var: Var) -> bool {
        self.0.contains(&Piece::Var(var))
    }

    pub fn expand(&self, cx: &Context<'_>) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Var(Var::Instance) => out.push_str(cx.instance),
                Piece::Var(Var::Port) => {
                    if let Some(p) = cx.port {
                        out.push_str(&p.to_string());
                    }
                }
                Piece::Var(Var::StateDir) => out.push_str(&cx.state_dir.to_string_lossy()),
                Piece::Var(Var::InstanceDir) => out.push_str(&cx.instance_dir.to_string_lossy()),
                Piece::Var(Var::App) => out.push_str(cx.app),
            }
        }
        out
    }
}

/// An environment variable name systemd's `EnvironmentFile=` accepts and a
/// shell would too.
pub fn is_valid_env_key(k: &str) -> bool {
    let b = k.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphabetic() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The helper's own policy directory: the CLI reads exactly the files the
/// helper judges by (no override, so the two can never disagree).
pub fn config_dir() -> PathBuf {
    PathBuf::from(policy::POLICY_DIR)
}

/// Loads `<config dir>/<name>.toml`.
pub fn load(name: &str) -> Result<App> {
    if !unitgate_policy::name::is_valid_app(name) {
        return Err(Error::BadName {
            kind: "app",
            name: name.to_owned(),
            rule: "use 1 to 64 of a-z 0-9 _ -, starting with a letter or digit".into(),
        });
    }
    let path = config_dir().join(format!("{name}.toml"));
    let bytes =
        match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::Config {
                what: format!("no app '{name}': {} does not exist", path.display()),
                hint:
                    "check --app / UNITGATE_APP, or ask an administrator to install the app config"
                        .into(),
            }),
            Err(e) => return Err(Error::io_path("read", &path, e)),
        };
    if bytes.len() as u64 > policy::MAX_POLICY_SIZE {
        return Err(Error::config(
            &path,
            format!("larger than {} bytes", policy::MAX_POLICY_SIZE),
        ));
    }
    parse(name, &path, &bytes)
}

/// Parses an app config: the helper's keys by the helper crate, ours here.
pub fn parse(name: &str, path: &Path, bytes: &[u8]) -> Result<App> {
    let path_buf = path.to_path_buf();
    let text =
        std::str::from_utf8(bytes).map_err(|_| Error::config(&path_buf, "not valid UTF-8"))?;
    let doc = toml::parse(text).map_err(|e| Error::config(&path_buf, e))?;
    let policy = policy::from_document(&doc).map_err(|e| Error::config(&path_buf, e))?;
    cli_keys(name, &path_buf, &doc, policy)
}

fn cli_keys(name: &str, path: &Path, doc: &Document, policy: Policy) -> Result<App> {
    let key = Key { path };
    let get = |k: &str| doc.root.get(k);
    let state_dir = match get("state_dir") {
        Some(e) => key.abs_path(e)?,
        None => PathBuf::from(format!("/var/lib/{name}/instances")),
    };
    let skeleton_dir = get("skeleton_dir").map(|e| key.abs_path(e)).transpose()?;
    let env_file = match get("env_file") {
        Some(e) => key.file_name(e)?,
        None => DEFAULT_ENV_FILE.to_owned(),
    };
    let port_range = get("port_range").map(|e| key.port_range(e)).transpose()?;
    let install_command = get("install_command").map(|e| key.command(e)).transpose()?;
    let stop_timeout = get("stop_timeout")
        .map(|e| key.seconds(e, 1, 86400))
        .transpose()?;
    let settle = match get("settle") {
        Some(e) => key.seconds(e, 0, 600)?,
        None => DEFAULT_SETTLE_SECS,
    };
    let env = match doc.table("env") {
        Some(table) => table
            .entries
            .iter()
            .map(|e| key.env_var(e, port_range.is_some()))
            .collect::<Result<_>>()?,
        None => Vec::new(),
    };
    Ok(App {
        name: name.to_owned(),
        config_path: path.to_path_buf(),
        policy,
        state_dir,
        skeleton_dir,
        env_file,
        port_range,
        install_command,
        stop_timeout,
        settle: std::time::Duration::from_secs(settle),
        env,
    })
}

/// Reads one of the CLI's keys, refusing a bad value with the key and its
/// line.
struct Key<'a> {
    path: &'a Path,
}

impl Key<'_> {
    fn bad(&self, e: &Entry, what: &str) -> Error {
        // An [env] key may be a quoted key holding anything: escaped.
        let key = toml::display_key(&e.key);
        Error::config(self.path, format!("`{key}` at line {}: {what}", e.line))
    }

    fn abs_path(&self, e: &Entry) -> Result<PathBuf> {
        match &e.value {
            Value::String(s) if s.starts_with('/') && !s.split('/').any(|c| c == "..") => {
                Ok(PathBuf::from(s))
            }
            Value::String(_) => Err(self.bad(e, "must be an absolute path without `..`")),
            v => Err(self.bad(e, &format!("must be a string, not {}", v.type_name()))),
        }
    }

    fn file_name(&self, e: &Entry) -> Result<String> {
        match &e.value {
            Value::String(s) if is_plain_file_name(s) => Ok(s.clone()),
            _ => Err(self.bad(
                e,
                "must be a plain file name (no `/`, not starting with `.`)",
            )),
        }
    }

    fn port_range(&self, e: &Entry) -> Result<(u16, u16)> {
        let Value::Array(v) = &e.value else {
            return Err(self.bad(e, "must be an array [low, high]"));
        };
        match v.as_slice() {
            [Value::Integer(lo), Value::Integer(hi)] if 1 <= *lo && lo <= hi && *hi <= 65535 => {
                Ok((*lo as u16, *hi as u16))
            }
            _ => Err(self.bad(e, "must be [low, high] with 1 <= low <= high <= 65535")),
        }
    }

    /// `install_command`: an argv whose program is an absolute path.
    fn command(&self, e: &Entry) -> Result<Vec<String>> {
        let shape = "must be a non-empty array of strings [\"/abs/program\", \"arg\", ...]";
        let Value::Array(v) = &e.value else {
            return Err(self.bad(e, shape));
        };
        let argv = v
            .iter()
            .map(|item| match item {
                Value::String(s) if !s.contains('\0') => Ok(s.clone()),
                _ => Err(self.bad(e, "must be an array of strings")),
            })
            .collect::<Result<Vec<_>>>()?;
        match argv.first() {
            None => Err(self.bad(e, shape)),
            Some(program) if !program.starts_with('/') => {
                Err(self.bad(e, "the program (first element) must be an absolute path"))
            }
            Some(_) => Ok(argv),
        }
    }

    fn seconds(&self, e: &Entry, min: i64, max: i64) -> Result<u64> {
        match e.value {
            Value::Integer(n) if (min..=max).contains(&n) => Ok(n as u64),
            _ => Err(self.bad(
                e,
                &format!("must be an integer number of seconds, {min} to {max}"),
            )),
        }
    }

    /// One `[env]` entry: a valid name and a template over the instance's
    /// variables (`{port}` only when the app allocates ports, which then
    /// own the name PORT).
    fn env_var(&self, e: &Entry, has_ports: bool) -> Result<(String, Template)> {
        if !is_valid_env_key(&e.key) {
            return Err(self.bad(e, "variable names must match [A-Za-z_][A-Za-z0-9_]*"));
        }
        if has_ports && e.key == PORT_VAR {
            return Err(self.bad(
                e,
                "PORT is allocated from port_range; use another name, e.g. GAME_PORT = \"{port}\"",
            ));
        }
        let Value::String(s) = &e.value else {
            return Err(self.bad(e, "must be a string (a template)"));
        };
        let t = Template::parse(s).map_err(|why| self.bad(e, &why))?;
        if !has_ports && t.uses(Var::Port) {
            return Err(self.bad(e, "uses {port} but the app has no port_range"));
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(self.bad(e, "must not contain control characters"));
        }
        Ok((e.key.clone(), t))
    }
}

fn is_plain_file_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && !s.starts_with('.') && !s.contains('/') && !s.contains('\0')
}

/// Who runs this process (the real user, as the helper will see it through
/// sudo), for app selection and the caller check.
pub fn caller() -> Result<Caller> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    Caller::lookup(uid.as_raw(), Some(gid.as_raw())).map_err(|e| Error::NotPermitted {
        what: format!("cannot identify the calling user: {e}"),
        hint: "run unitgate as a user with a passwd entry".into(),
    })
}

/// Refuses (77) a caller the app's policy does not list, naming who is
/// asking and what would let them: the helper would refuse them anyway,
/// after the CLI had touched the state directory.
pub fn check_may_drive(caller: &Caller, app: &App) -> Result<()> {
    if caller.is_allowed(&app.policy.callers) {
        return Ok(());
    }
    Err(Error::NotPermitted {
        what: format!(
            "{} may not drive app '{}': neither the user nor one of its groups is among its callers",
            quoted(&caller.name),
            app.name
        ),
        hint: format!(
            "ask an administrator to add {} or @GROUP to `callers` in {}",
            quoted(&caller.name),
            app.config_path.display()
        ),
    })
}

/// `--app`, else `UNITGATE_APP`, else the only app the caller may drive.
pub fn select(flag: Option<&str>) -> Result<App> {
    if let Some(name) = flag {
        return load(name);
    }
    if let Some(name) = std::env::var_os(APP_ENV).filter(|v| !v.is_empty()) {
        let name = name.to_str().ok_or_else(|| Error::BadName {
            kind: "app",
            name: name.to_string_lossy().into_owned(),
            rule: "UNITGATE_APP must be valid UTF-8".into(),
        })?;
        return load(name);
    }
    let dir = config_dir();
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::Config {
        what: format!("cannot list apps in {}: {e}", dir.display()),
        hint: "install unitgate (deploy/install.sh) and an app config, or pass --app".into(),
    })?;
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(str::to_owned)
        })
        .filter(|n| unitgate_policy::name::is_valid_app(n))
        .collect();
    names.sort();
    let me = caller()?;
    let drivable: Vec<App> = names
        .iter()
        .filter_map(|n| load(n).ok())
        .filter(|a| me.is_allowed(&a.policy.callers))
        .collect();
    match drivable.len() {
        1 => Ok(drivable.into_iter().next().expect("one app")),
        0 => Err(Error::NotPermitted {
            what: format!(
                "no app in {} lists {} among its callers",
                dir.display(),
                quoted(&me.name)
            ),
            hint: "pass --app APP, or ask an administrator to add you to an app's `callers`".into(),
        }),
        _ => Err(Error::usage(
            format!(
                "several apps are drivable ({})",
                drivable
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "choose one with --app APP or UNITGATE_APP",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
unit = "demo@.service"
instance_pattern = "[a-z0-9-]+"
callers = ["web", "@ops"]
actions = ["enable", "disable", "restart", "reset-failed", "show"]
state_dir = "/srv/demo/instances"
skeleton_dir = "/srv/demo/skeleton"
env_file = "server.env"
port_range = [27015, 27115]
install_command = ["/srv/demo/bin/install", "--quiet"]
stop_timeout = 30
settle = 5

[env]
GAME_PORT = "{port}"
DATA = "{instance_dir}/data"
NAME = "{app}-{instance} {{literal}}"
"#;

    fn parse_str(s: &str) -> Result<App> {
        parse(
            "demo",
            Path::new("/etc/unitgate/apps/demo.toml"),
            s.as_bytes(),
        )
    }

    #[test]
    fn full_config_parses() {
        let app = parse_str(FULL).unwrap();
        assert_eq!(app.state_dir, Path::new("/srv/demo/instances"));
        assert_eq!(
            app.skeleton_dir.as_deref(),
            Some(Path::new("/srv/demo/skeleton"))
        );
        assert_eq!(app.env_file, "server.env");
        assert_eq!(app.port_range, Some((27015, 27115)));
        assert_eq!(app.install_command.as_ref().unwrap()[1], "--quiet");
        assert_eq!(app.stop_timeout, Some(30));
        assert_eq!(app.settle, std::time::Duration::from_secs(5));
        assert_eq!(app.env.len(), 3);
        let x1 = app.instance("x1").unwrap();
        assert_eq!(app.unit(&x1), "demo@x1.service");
        assert_eq!(app.unit_glob(), "demo@*.service");
        assert_eq!(app.instance_of("demo@x1.service"), Some(x1));
        assert_eq!(app.instance_of("demox@x1.service"), None);
        assert_eq!(app.instance_of("demo@.service"), None);
        assert_eq!(
            app.instance_of("demo@UPPER.service"),
            None,
            "not this app's pattern"
        );
    }

    #[test]
    fn defaults() {
        let app =
            parse_str("unit = \"demo@.service\"\ncallers = [\"web\"]\nactions = [\"show\"]\n")
                .unwrap();
        assert_eq!(app.state_dir, Path::new("/var/lib/demo/instances"));
        assert_eq!(app.env_file, "instance.env");
        assert_eq!(app.port_range, None);
        assert!(app.env.is_empty());
    }

    #[test]
    fn templates_expand() {
        let app = parse_str(FULL).unwrap();
        let cx = Context {
            app: "demo",
            instance: "a1",
            state_dir: Path::new("/s"),
            instance_dir: Path::new("/s/a1"),
            port: Some(27016),
        };
        let got: Vec<String> = app.env.iter().map(|(_, t)| t.expand(&cx)).collect();
        assert_eq!(got, ["27016", "/s/a1/data", "demo-a1 {literal}"]);
    }

    #[test]
    fn bad_cli_keys_are_config_errors_naming_the_line() {
        let base = "unit = \"demo@.service\"\ncallers = [\"web\"]\nactions = [\"show\"]\n";
        for (extra, needle) in [
            ("state_dir = \"relative\"", "state_dir"),
            ("state_dir = \"/a/../b\"", "state_dir"),
            ("env_file = \"../x\"", "env_file"),
            ("env_file = \".hidden\"", "env_file"),
            ("port_range = [10, 5]", "port_range"),
            ("port_range = [0, 5]", "port_range"),
            ("port_range = [1, 70000]", "port_range"),
            ("install_command = [\"relative\"]", "install_command"),
            ("install_command = []", "install_command"),
            ("stop_timeout = 0", "stop_timeout"),
            ("settle = 601", "settle"),
            ("settle = \"2\"", "settle"),
            ("[env]\nA = \"{nope}\"", "unknown placeholder"),
            ("[env]\nA = \"{port}\"", "port_range"),
            ("[env]\nA = \"{instance\"", "unclosed"),
            ("[env]\nA = 1", "template"),
            ("[env]\n1A = \"x\"", "variable names"),
            ("port_range = [1, 2]\n[env]\nPORT = \"x\"", "PORT"),
            ("bogus = 1", "unknown key"),
        ] {
            let err = parse_str(&format!("{base}{extra}\n")).unwrap_err();
            assert_eq!(err.code(), 78, "{extra}");
            let msg = err.message().unwrap();
            assert!(msg.contains(needle), "{extra}: {msg}");
            assert!(msg.contains("demo.toml"), "{msg}");
        }
    }

    #[test]
    fn env_keys_are_escaped_in_errors_and_env_may_be_dotted_or_inline() {
        let base = "unit = \"demo@.service\"\ncallers = [\"web\"]\nactions = [\"show\"]\n";
        let err = parse_str(&format!("{base}env.\"A\\u001bB\" = \"x\"\n")).unwrap_err();
        let msg = err.message().unwrap();
        assert!(
            msg.contains("`\"A\\x1bB\"` at line 4: variable names"),
            "{msg:?}"
        );
        assert!(!msg.contains('\u{1b}'), "{msg:?}");
        for env in ["env.A = 'x'\nenv.B = 'y'", "env = { A = 'x', \"B\" = 'y' }"] {
            let app = parse_str(&format!("{base}{env}\n")).unwrap();
            let names: Vec<&str> = app.env.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, ["A", "B"], "{env}");
        }
    }

    #[test]
    fn instance_names_use_the_helper_rules_and_the_pattern() {
        let app = parse_str(FULL).unwrap();
        assert_eq!(app.instance("a-1").unwrap().as_str(), "a-1");
        for bad in ["", "../x", "a/b", "-a", "a.b", "A", "a b", "a\n"] {
            assert_eq!(app.instance(bad).unwrap_err().code(), 65, "{bad:?}");
        }
        let both = app
            .instances(&["a".into(), "b".into(), "a".into()])
            .unwrap();
        assert_eq!(both.len(), 2, "duplicates once");
        assert_eq!(
            app.instances(&["a".into(), "B".into()]).unwrap_err().code(),
            65
        );
    }
}
