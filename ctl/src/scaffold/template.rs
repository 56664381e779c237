//! The files `new-app` writes, as text with `{{key}}` placeholders
//! (`ctl/templates/new-app/`), and the one rule that fills them: every
//! placeholder is replaced by its value, and a line holding nothing but a
//! placeholder whose value is empty is left out whole (an optional setting
//! leaves no blank line behind). Values are inserted, never rescanned, so a
//! command line containing `{{` stays as written.

pub const UNIT: &str = include_str!("../../templates/new-app/unit.service");
pub const APP_TOML: &str = include_str!("../../templates/new-app/app.toml");
pub const INSTALL_CONF: &str = include_str!("../../templates/new-app/install.conf");
pub const SKELETON_README: &str = include_str!("../../templates/new-app/skeleton-README");
pub const README: &str = include_str!("../../templates/new-app/README.md");

/// Fills `template` from `values` (key, value). A placeholder with no value
/// is kept as written, which the tests below refuse for every template.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let lookup = |key: &str| values.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    let mut out = String::with_capacity(template.len() * 2);
    for line in template.split_inclusive('\n') {
        let bare = line.trim_end_matches('\n');
        let only_key = bare
            .strip_prefix("{{")
            .and_then(|rest| rest.strip_suffix("}}"))
            .filter(|key| !key.contains('{') && !key.contains('}'));
        if only_key.and_then(lookup) == Some("") {
            continue;
        }
        let mut rest = line;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open + 2..].find("}}") else {
                break;
            };
            let key = &rest[open + 2..open + 2 + close];
            out.push_str(&rest[..open]);
            match lookup(key) {
                Some(value) => out.push_str(value),
                None => out.push_str(&rest[open..open + 4 + close]),
            }
            rest = &rest[open + 4 + close..];
        }
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: [&str; 17] = [
        "name",
        "user",
        "home",
        "state_dir",
        "unit_file",
        "exec",
        "memory_max",
        "cpu_quota",
        "tasks_max",
        "network_wants",
        "network",
        "port_range",
        "port_line",
        "profile_settings",
        "extra_dirs",
        "profile_env",
        "profile_line",
    ];

    #[test]
    fn every_placeholder_in_every_template_has_a_value() {
        let values: Vec<(&str, &str)> = KEYS.iter().map(|k| (*k, "v")).collect();
        for template in [UNIT, APP_TOML, INSTALL_CONF, SKELETON_README, README] {
            let filled = fill(template, &values);
            assert!(!filled.contains("{{"), "unfilled placeholder in:\n{filled}");
        }
    }

    #[test]
    fn a_line_that_is_only_an_empty_value_is_left_out() {
        let out = fill("a\n{{x}}\nb {{x}}.\n", &[("x", "")]);
        assert_eq!(out, "a\nb .\n");
        assert_eq!(fill("a\n{{x}}\nb\n", &[("x", "1\n2")]), "a\n1\n2\nb\n");
    }

    #[test]
    fn values_are_not_rescanned_and_unknown_keys_stay() {
        assert_eq!(fill("{{x}} {{y}}", &[("x", "{{y}}")]), "{{y}} {{y}}");
        assert_eq!(fill("{0,31} {instance}", &[]), "{0,31} {instance}");
    }
}
