//! Property test over the policy crate's public API: a unit name formed
//! from any policy's prefix and any instance it allows always round-trips,
//! and no pattern, however wide, lets through a name the built-in rule
//! refuses.

use proptest::prelude::*;
use unitgate_policy::{config, name};

const WIDE_PATTERNS: &[&str] = &[
    ".*",
    "(?s).*",
    "[^x]*",
    ".*|.*",
    r"[\s\S]*",
    "[A-Za-z0-9_-]+",
];

proptest! {
    #[test]
    fn unit_names_round_trip(
        prefix in "[A-Za-z0-9][A-Za-z0-9_:-]{0,127}",
        instance in "[A-Za-z0-9][A-Za-z0-9_-]{0,63}|\\PC{0,70}",
        pattern in proptest::sample::select(WIDE_PATTERNS),
    ) {
        let text = format!(
            "unit = '{prefix}@.service'\ninstance_pattern = '{pattern}'\ncallers = []\nactions = ['show']\n"
        );
        let p = config::parse(text.as_bytes()).unwrap();
        // A pattern can only narrow: allowed implies the built-in rule.
        if !p.allows_instance(&instance) {
            return Ok(());
        }
        prop_assert!(name::is_valid_instance(&instance));
        let unit = name::unit_name(&p.unit_prefix, &instance).unwrap();
        let back = unit.strip_prefix(&format!("{prefix}@")).and_then(|u| u.strip_suffix(".service"));
        prop_assert_eq!(back, Some(instance.as_str()));
        prop_assert_eq!(unit.matches('@').count(), 1);
        prop_assert_eq!(unit.matches('.').count(), 1);
        prop_assert!(instance.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        prop_assert!(!instance.starts_with('-'));
    }
}
