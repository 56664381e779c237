//! The per-app policy: where it lives, how it is read, what it may say.

use crate::action::Action;
use crate::caller::CallerRule;
use crate::escape::quoted;
use crate::instance_limits::{self, LimitPolicy};
use crate::name;
use crate::task::{self, TaskPolicy};
use crate::toml::{self, Document, Entry, Value};
use crate::trusted;
use regex::{Regex, RegexBuilder};
use std::path::{Path, PathBuf};

/// Policy files live at `<POLICY_DIR>/<app>.toml`. Fixed at build time: no
/// flag or environment variable can move it.
pub const POLICY_DIR: &str = "/etc/unitgate/apps";
/// Larger policy files are refused before being parsed.
pub const MAX_POLICY_SIZE: u64 = 64 * 1024;

/// The keys the helper reads and validates.
pub const HELPER_KEYS: &[&str] = &[
    "unit",
    "instance_pattern",
    "callers",
    "actions",
    "max_instances",
];
/// Top-level keys owned by the `unitgate` CLI: accepted (any type) and
/// otherwise ignored by the helper.
pub const CLI_KEYS: &[&str] = &[
    "state_dir",
    "skeleton_dir",
    "env_file",
    "port_range",
    "install_command",
    "stop_timeout",
    "settle",
];
/// Tables owned by the CLI, accepted with any content.
pub const CLI_TABLES: &[&str] = &["env"];
/// The table the helper reads: what `run` may start (see `task.rs`).
pub const TASKS_TABLE: &str = "tasks";

/// Longest accepted `instance_pattern`, and the compiled size limit: a policy
/// is trusted, but a typo should not make every call slow.
pub const MAX_PATTERN_LEN: usize = 1024;
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_NEST_LIMIT: u32 = 32;

/// `max_instances` when the policy does not say, and the range it may say.
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;
pub const MAX_INSTANCES_RANGE: std::ops::RangeInclusive<u32> = 1..=100_000;

/// Why an app's policy cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no policy for app {} ({}: not found)", quoted(app.as_bytes()), quoted(path.as_os_str().as_encoded_bytes()))]
    Missing { app: String, path: PathBuf },
    /// The file or a directory above it is not trustworthy, or unreadable.
    #[error(transparent)]
    Untrusted(trusted::Error),
    #[error("invalid policy {} ({why})", quoted(path.as_os_str().as_encoded_bytes()))]
    Invalid { path: PathBuf, why: String },
}

#[derive(Clone, Debug)]
pub struct Policy {
    /// `left4me-server` for `unit = "left4me-server@.service"`.
    pub unit_prefix: String,
    /// The operator's pattern, already wrapped in `\A(?:…)\z`.
    pub instance_pattern: Option<Regex>,
    pub callers: Vec<CallerRule>,
    pub actions: Vec<Action>,
    /// Most instances of the template that may be enabled at once: each
    /// one is a unit PID 1 loads at every boot and daemon-reload.
    pub max_instances: u32,
    /// `[tasks]`: without it, the app's callers may run no task.
    pub tasks: Option<TaskPolicy>,
    /// `[limits]`: without it, no instance's limits may be set.
    pub limits: Option<LimitPolicy>,
}

impl Policy {
    pub fn allows_action(&self, action: Action) -> bool {
        self.actions.contains(&action)
    }

    /// Whether the app's callers may both enable and disable instances:
    /// what `limit` needs, since a limit (memory too small to run in) can
    /// stop an instance as surely as `disable`.
    pub fn callers_may_stop(&self) -> bool {
        [Action::Enable, Action::Disable]
            .iter()
            .all(|a| self.allows_action(*a))
    }

    /// An instance is allowed if it passes the built-in rule AND the pattern:
    /// a pattern can only narrow.
    pub fn allows_instance(&self, instance: &str) -> bool {
        name::is_valid_instance(instance)
            && self
                .instance_pattern
                .as_ref()
                .map_or(true, |re| re.is_match(instance))
    }
}

/// Read and validate `<root>/<dir>/<app>.toml`; `root` is the trusted
/// directory the secure walk starts from (`/` in production, `dir` relative).
pub fn load(root: &Path, dir: &Path, app: &str) -> Result<Policy, LoadError> {
    let rel = dir.join(format!("{app}.toml"));
    let path = root.join(&rel);
    let bytes = trusted::read_trusted(root, &rel, MAX_POLICY_SIZE).map_err(|e| match e {
        trusted::Error::NotFound(_) => LoadError::Missing {
            app: app.to_owned(),
            path: path.clone(),
        },
        other => LoadError::Untrusted(other),
    })?;
    parse(&bytes).map_err(|why| LoadError::Invalid { path, why })
}

/// Parse and validate policy text. The error is the reason, naming the line.
pub fn parse(bytes: &[u8]) -> Result<Policy, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        format!("not valid UTF-8 at line {line}")
    })?;
    let doc = toml::parse(text).map_err(|e| e.to_string())?;
    from_document(&doc)
}

/// Validate a parsed document against the policy schema.
pub fn from_document(doc: &Document) -> Result<Policy, String> {
    if let Some(t) = doc.tables.iter().find(|t| {
        !CLI_TABLES.contains(&t.name.as_str())
            && t.name != TASKS_TABLE
            && t.name != instance_limits::TABLE
    }) {
        // A table name may be a quoted key holding anything: escaped.
        return Err(format!(
            "unknown table `[{}]` at line {}, column {}",
            toml::display_key(&t.name),
            t.line,
            t.column
        ));
    }
    let known = |k: &str| HELPER_KEYS.contains(&k) || CLI_KEYS.contains(&k);
    if let Some(e) = doc.root.entries.iter().find(|e| !known(&e.key)) {
        return Err(format!(
            "unknown key `{}` at line {}, column {}",
            toml::display_key(&e.key),
            e.line,
            e.column
        ));
    }
    let required = |key: &str| {
        doc.root
            .get(key)
            .ok_or_else(|| format!("missing required key `{key}`"))
    };
    Ok(Policy {
        unit_prefix: unit_prefix(required("unit")?)?,
        instance_pattern: doc.root.get("instance_pattern").map(pattern).transpose()?,
        callers: callers(required("callers")?)?,
        actions: actions(required("actions")?)?,
        max_instances: doc
            .root
            .get("max_instances")
            .map(max_instances)
            .transpose()?
            .unwrap_or(DEFAULT_MAX_INSTANCES),
        tasks: doc.table(TASKS_TABLE).map(task::from_table).transpose()?,
        limits: doc
            .table(instance_limits::TABLE)
            .map(instance_limits::from_table)
            .transpose()?,
    })
}

fn type_error(e: &Entry, expected: &str, found: &Value) -> String {
    format!(
        "`{}` at line {} must be {expected}, not {}",
        e.key,
        e.line,
        found.type_name()
    )
}

fn string(e: &Entry) -> Result<&str, String> {
    match &e.value {
        Value::String(s) => Ok(s),
        other => Err(type_error(e, "a string", other)),
    }
}

fn string_array<'a>(e: &'a Entry) -> Result<Vec<&'a str>, String> {
    let item = |v: &'a Value| match v {
        Value::String(s) => Ok(s.as_str()),
        other => Err(type_error(e, "an array of strings, with elements", other)),
    };
    match &e.value {
        Value::Array(items) => items.iter().map(item).collect(),
        other => Err(type_error(e, "an array of strings", other)),
    }
}

fn unit_prefix(e: &Entry) -> Result<String, String> {
    let template = string(e)?;
    name::template_prefix(template).map(str::to_owned).ok_or_else(|| {
        format!(
            "`unit` at line {} must be a template <prefix>@.service with prefix [A-Za-z0-9][A-Za-z0-9_:-]{{0,127}}, not '{}'",
            e.line,
            quoted(template.as_bytes())
        )
    })
}

/// Compile the pattern on its own first, so that it cannot close our
/// anchoring group (`a)|(.*`), then wrapped in `\A(?:…)\z`.
fn pattern(e: &Entry) -> Result<Regex, String> {
    let pat = string(e)?;
    let bad = |why: String| format!("`instance_pattern` at line {}: {why}", e.line);
    if pat.is_empty() || pat.len() > MAX_PATTERN_LEN {
        return Err(bad(format!("must be 1 to {MAX_PATTERN_LEN} bytes")));
    }
    if pat.chars().any(char::is_control) {
        return Err(bad("must not contain control characters".into()));
    }
    let invalid = |err: regex::Error| bad(format!("invalid regex: {}", one_line(&err)));
    compile(pat).map_err(invalid)?;
    compile(&format!(r"\A(?:{pat})\z")).map_err(invalid)
}

/// The regex crate explains a syntax error over several lines (the pattern,
/// a caret, then `error: why`); the helper's refusals are one line, so only
/// the why is kept (the pattern is at the line the message names).
fn one_line(err: &regex::Error) -> String {
    let text = err.to_string();
    match text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("error: "))
    {
        Some(why) => why.to_owned(),
        None => text.split_whitespace().collect::<Vec<_>>().join(" "),
    }
}

fn compile(pat: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pat)
        .size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(REGEX_NEST_LIMIT)
        .build()
}

fn max_instances(e: &Entry) -> Result<u32, String> {
    let (lo, hi) = (MAX_INSTANCES_RANGE.start(), MAX_INSTANCES_RANGE.end());
    match &e.value {
        Value::Integer(n) => u32::try_from(*n)
            .ok()
            .filter(|n| MAX_INSTANCES_RANGE.contains(n))
            .ok_or_else(|| {
                format!(
                    "`max_instances` at line {} must be from {lo} to {hi}, not {n}",
                    e.line
                )
            }),
        other => Err(type_error(e, "an integer", other)),
    }
}

fn callers(e: &Entry) -> Result<Vec<CallerRule>, String> {
    let rule = |s: &str| match s.strip_prefix('@') {
        Some(g) if name::is_valid_user(g) => Ok(CallerRule::Group(g.to_owned())),
        None if name::is_valid_user(s) => Ok(CallerRule::User(s.to_owned())),
        _ => Err(format!(
            "`callers` at line {}: '{}' is neither a user name [a-z_][a-z0-9_-]{{0,31}} nor @group",
            e.line,
            quoted(s.as_bytes())
        )),
    };
    string_array(e)?.into_iter().map(rule).collect()
}

fn actions(e: &Entry) -> Result<Vec<Action>, String> {
    let mut out = Vec::new();
    for s in string_array(e)? {
        let shown = quoted(s.as_bytes());
        let action = Action::parse(s).ok_or_else(|| {
            format!(
                "`actions` at line {}: unknown action '{shown}' (expected enable, disable, restart, reset-failed, show)",
                e.line
            )
        })?;
        if out.contains(&action) {
            return Err(format!(
                "`actions` at line {}: duplicate action '{shown}'",
                e.line
            ));
        }
        out.push(action);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
