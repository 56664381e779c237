//! Name rules: apps, instances, unit templates, users and groups.
//!
//! Each rule is a small hand-written check rather than a regex, so it can be
//! read at a glance. The instance rule is the last line of defence: whatever
//! a policy's `instance_pattern` says, an instance must also pass it, and it
//! admits nothing systemd would escape or treat specially (no `.`, `/`, `@`,
//! `\`, `%`, whitespace, leading `-`, non-ASCII).

/// Suffix of a unit template: `<prefix>@.service`.
pub const TEMPLATE_SUFFIX: &str = "@.service";
/// Suffix of a unit instance: `<prefix>@<instance>.service`.
pub const SERVICE_SUFFIX: &str = ".service";

/// `first` for the first byte, `rest` for every other, `1..=max` bytes long.
fn matches_rule(s: &str, max: usize, first: fn(u8) -> bool, rest: fn(u8) -> bool) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.len() <= max && first(b[0]) && b[1..].iter().all(|&c| rest(c))
}

fn lower_digit(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn lower_digit_dash(c: u8) -> bool {
    lower_digit(c) || c == b'_' || c == b'-'
}

fn alnum_dash(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// App name: `[a-z0-9][a-z0-9_-]{0,63}`. It becomes a file name under
/// `/etc/unitgate/apps/`, so it must never contain `/` or start with `.`.
pub fn is_valid_app(s: &str) -> bool {
    matches_rule(s, 64, lower_digit, lower_digit_dash)
}

/// The built-in instance rule: `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.
pub fn is_valid_instance(s: &str) -> bool {
    matches_rule(s, 64, |c| c.is_ascii_alphanumeric(), alnum_dash)
}

/// Unit prefix (the part before `@`): `[A-Za-z0-9][A-Za-z0-9_:-]{0,127}`.
pub fn is_valid_unit_prefix(s: &str) -> bool {
    matches_rule(
        s,
        128,
        |c| c.is_ascii_alphanumeric(),
        |c| alnum_dash(c) || c == b':',
    )
}

/// User name as the policy may list it: `[a-z_][a-z0-9_-]{0,31}`.
pub fn is_valid_user(s: &str) -> bool {
    matches_rule(
        s,
        32,
        |c| c.is_ascii_lowercase() || c == b'_',
        lower_digit_dash,
    )
}

/// The prefix of a template `<prefix>@.service`, if the template is valid.
pub fn template_prefix(template: &str) -> Option<&str> {
    let prefix = template.strip_suffix(TEMPLATE_SUFFIX)?;
    is_valid_unit_prefix(prefix).then_some(prefix)
}

/// Build `<prefix>@<instance>.service`, re-validating both parts and checking
/// the result byte for byte, so a bug elsewhere cannot produce another unit.
pub fn unit_name(prefix: &str, instance: &str) -> Option<String> {
    if !is_valid_unit_prefix(prefix) || !is_valid_instance(instance) {
        return None;
    }
    let unit = format!("{prefix}@{instance}{SERVICE_SUFFIX}");
    let expected: Vec<u8> = [
        prefix.as_bytes(),
        b"@",
        instance.as_bytes(),
        SERVICE_SUFFIX.as_bytes(),
    ]
    .concat();
    (unit.as_bytes() == expected.as_slice()).then_some(unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &[&str] = &[
        "",
        "-x",
        "--now",
        "-",
        "a.service",
        "a@b",
        "@",
        "../x",
        "..",
        ".",
        "a/b",
        "/",
        "a b",
        " a",
        "a ",
        "a\tb",
        "a\n",
        "\n",
        "a\0b",
        "\0",
        "ａ",
        "а",
        "aа",
        "*",
        "a*",
        "?",
        "[",
        "a[b]",
        "%i",
        "a%i",
        "\\x",
        "a\\b",
        "a.b",
        "a:b",
        "a;b",
        "a$b",
        "a`b",
        "$(id)",
        "a'b",
        "a\"b",
        "_a",
        "é",
        "a\u{200b}",
    ];

    #[test]
    fn instance_rule_rejects_hostile_names() {
        for name in HOSTILE {
            assert!(!is_valid_instance(name), "accepted {name:?}");
        }
        assert!(!is_valid_instance(&"a".repeat(65)));
    }

    #[test]
    fn instance_rule_accepts_plain_names() {
        for name in ["1", "a", "Z", "0a", "a-b", "a_b", "A-_9", "27015", "a-"] {
            assert!(is_valid_instance(name), "rejected {name:?}");
        }
        assert!(is_valid_instance(&"a".repeat(64)));
    }

    #[test]
    fn app_rule() {
        for name in HOSTILE {
            assert!(!is_valid_app(name), "accepted {name:?}");
        }
        for name in ["A", "Left4me", "ab.c", "a@b"] {
            assert!(!is_valid_app(name), "accepted {name:?}");
        }
        for name in ["left4me", "drdr", "0", "a_b-c"] {
            assert!(is_valid_app(name), "rejected {name:?}");
        }
        assert!(is_valid_app(&"a".repeat(64)));
        assert!(!is_valid_app(&"a".repeat(65)));
    }

    #[test]
    fn user_rule() {
        for name in ["root", "_apt", "www-data", "a1"] {
            assert!(is_valid_user(name), "rejected {name:?}");
        }
        for name in ["", "1a", "Root", "-a", "@a", "a b", "a.b", "a$"] {
            assert!(!is_valid_user(name), "accepted {name:?}");
        }
        assert!(!is_valid_user(&"a".repeat(33)));
    }

    #[test]
    fn templates() {
        assert_eq!(
            template_prefix("left4me-server@.service"),
            Some("left4me-server")
        );
        assert_eq!(template_prefix("a:b@.service"), Some("a:b"));
        for bad in [
            "x.service",
            "@.service",
            "a@b.service",
            "a@.socket",
            "a.b@.service",
            "-a@.service",
            "a@@.service",
        ] {
            assert_eq!(template_prefix(bad), None, "{bad}");
        }
        assert!(template_prefix(&format!("{}@.service", "a".repeat(129))).is_none());
    }

    #[test]
    fn unit_names() {
        assert_eq!(unit_name("a", "1").as_deref(), Some("a@1.service"));
        assert_eq!(unit_name("a", "../x"), None);
        assert_eq!(unit_name("a", "-x"), None);
        assert_eq!(unit_name("a.b", "1"), None);
    }
}
