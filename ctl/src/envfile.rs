//! The instance environment file: written by `init`, read back by `init`
//! (ports in use) and by `launch`, which hands it to the instance's program.
//!
//! One `KEY=VALUE` per line; `#` comments and blank lines are ignored.
//! `init` writes every value double-quoted with `\`, `"`, `$` and `` ` ``
//! escaped by a backslash (which `sh` reads the same way); hand-written
//! lines may also use single quotes (literal) or a bare value (trimmed).

use std::collections::BTreeMap;

use crate::app::{is_valid_env_key, App, Context, PORT_VAR};
use crate::name::InstanceName;

/// Largest environment file read back.
pub const MAX_SIZE: u64 = 64 * 1024;

/// A value quoted as [`parse`] reads it. Control characters are rejected
/// before values get here.
pub fn quote(v: &str) -> String {
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

/// The variables of an environment file, in file order (a later line for
/// the same key replaces the earlier value). The error names the line.
pub fn parse(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |why: &str| format!("line {}: {why}", i + 1);
        let (key, raw) = line
            .split_once('=')
            .ok_or_else(|| at("expected KEY=VALUE"))?;
        let key = key.trim();
        if !is_valid_env_key(key) {
            return Err(at("the name must match [A-Za-z_][A-Za-z0-9_]*"));
        }
        let value = value(raw.trim()).map_err(|why| at(&why))?;
        match out.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key.to_owned(), value)),
        }
    }
    Ok(out)
}

fn value(raw: &str) -> Result<String, String> {
    if let Some(rest) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.push(chars.next().ok_or("a backslash ends the line")?),
                '"' => {
                    return match chars.as_str().trim() {
                        "" => Ok(out),
                        _ => Err("text after the closing quote".into()),
                    }
                }
                c => out.push(c),
            }
        }
        return Err("no closing double quote".into());
    }
    if let Some(rest) = raw.strip_prefix('\'') {
        let (inner, after) = rest.split_once('\'').ok_or("no closing single quote")?;
        if !after.trim().is_empty() {
            return Err("text after the closing quote".into());
        }
        return Ok(inner.to_owned());
    }
    Ok(raw.to_owned())
}

/// The value of `key` in an environment file's text, if it parses.
pub fn lookup(text: &str, key: &str) -> Option<String> {
    parse(text)
        .ok()?
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// The comment line after which `init`'s `--set` values stand: what
/// `reset` and `reconfigure` keep when they render the file again.
pub const SETS_MARKER: &str = "# --set values (kept by `unitgate reset` and `reconfigure`):";

/// The environment file of an instance: the app and instance names, its
/// port, the app's `[env]` expanded, then `--set` values after
/// [`SETS_MARKER`] (deterministic order; a later source replaces an earlier
/// value).
pub fn text_for(
    app: &App,
    instance: &InstanceName,
    port: Option<u16>,
    sets: &[(String, String)],
) -> String {
    let dir = app.instance_dir(instance);
    let cx = Context {
        app: &app.name,
        instance: instance.as_str(),
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
    put("UNITGATE_INSTANCE", instance.to_string());
    if let Some(p) = port {
        put(PORT_VAR, p.to_string());
    }
    for (k, t) in &app.env {
        put(k, t.expand(&cx));
    }
    let mut text = format!(
        "# Written by `unitgate init` for instance {instance} of app {}.\n# Read by `unitgate launch` when the instance starts; values are double-quoted.\n",
        app.name
    );
    let is_set = |k: &str| sets.iter().any(|(s, _)| s == k);
    for k in order.iter().filter(|k| !is_set(k)) {
        text.push_str(&format!("{k}={}\n", quote(&vars[k])));
    }
    if !sets.is_empty() {
        text.push_str(SETS_MARKER);
        text.push('\n');
        let mut keys: Vec<&str> = Vec::new();
        for (k, _) in sets {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
        for k in keys {
            let last = sets.iter().rev().find(|(s, _)| s == k).map(|(_, v)| v);
            text.push_str(&format!("{k}={}\n", quote(last.map_or("", String::as_str))));
        }
    }
    text
}

/// The `--set` values of an environment file: the lines after
/// [`SETS_MARKER`]. A file from before the marker existed keeps as `--set`
/// every variable the app config does not produce.
pub fn sets(text: &str, app: &App) -> Vec<(String, String)> {
    match text.split_once(&format!("\n{SETS_MARKER}\n")) {
        Some((_, after)) => parse(after).unwrap_or_default(),
        None => {
            let generated = |k: &str| {
                k == "UNITGATE_APP"
                    || k == "UNITGATE_INSTANCE"
                    || k == PORT_VAR
                    || app.env.iter().any(|(e, _)| e == k)
            };
            parse(text)
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| !generated(k))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            "a=b",
        ] {
            let parsed = parse(&format!("K={}\n", quote(v))).unwrap();
            assert_eq!(parsed, [("K".to_owned(), v.to_owned())], "{v:?}");
        }
        assert_eq!(quote("a$b"), "\"a\\$b\"");
    }

    #[test]
    fn hand_written_forms() {
        let text = "# c\n\n A = bare value \nB='lit $x \\n'\nC=\"x\"\nA=again\n";
        assert_eq!(
            parse(text).unwrap(),
            [
                ("A".to_owned(), "again".to_owned()),
                ("B".to_owned(), "lit $x \\n".to_owned()),
                ("C".to_owned(), "x".to_owned()),
            ]
        );
        assert_eq!(lookup(text, "C").as_deref(), Some("x"));
        assert_eq!(lookup(text, "D"), None);
    }

    fn app() -> App {
        crate::app::parse(
            "demo",
            std::path::Path::new("/etc/unitgate/apps/demo.toml"),
            b"unit = \"demo@.service\"\ncallers = [\"web\"]\nactions = [\"show\"]\nport_range = [10, 20]\n[env]\nGREETING = \"hi {instance}\"\nMODE = \"fast\"\n",
        )
        .unwrap()
    }

    #[test]
    fn sets_survive_a_render_and_override_the_config() {
        let app = app();
        let a = app.instance("a").unwrap();
        let sets = vec![
            ("MAP".to_owned(), "c1".to_owned()),
            ("MODE".to_owned(), "slow".to_owned()),
        ];
        let text = text_for(&app, &a, Some(12), &sets);
        let vars = parse(&text).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PORT"), Some("12"));
        assert_eq!(get("GREETING"), Some("hi a"));
        assert_eq!(get("MODE"), Some("slow"), "--set wins over [env]");
        assert_eq!(get("MAP"), Some("c1"));
        assert_eq!(sets_of(&text, &app), sets);
        // Rendered again from its own sets: the same file.
        assert_eq!(text_for(&app, &a, Some(12), &sets_of(&text, &app)), text);
        assert!(sets_of(&text_for(&app, &a, None, &[]), &app).is_empty());
        // A file without the marker: what the config does not make.
        let old = "UNITGATE_APP=\"demo\"\nPORT=\"12\"\nGREETING=\"x\"\nMAP=\"c2\"\n";
        assert_eq!(sets_of(old, &app), [("MAP".to_owned(), "c2".to_owned())]);
    }

    fn sets_of(text: &str, app: &App) -> Vec<(String, String)> {
        sets(text, app)
    }

    #[test]
    fn malformed_lines_are_refused_naming_the_line() {
        for (text, line) in [
            ("A=1\nnot a line\n", "line 2"),
            ("1A=x\n", "line 1"),
            ("A=\"open\n", "line 1"),
            ("A=\"x\" trailing\n", "line 1"),
            ("A='x\n", "line 1"),
            ("A=\"x\\", "line 1"),
            ("export A=1\n", "line 1"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(line), "{text:?}: {e}");
        }
    }
}
