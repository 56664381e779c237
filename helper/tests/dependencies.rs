//! The root binary's runtime dependencies are exactly the ones
//! docs/helper.md gives a reason for ("What the helper is built from").

use std::collections::BTreeSet;
use std::path::Path;

/// Crates `cargo tree` lists for the helper, without build-time proc
/// macros (they are not linked in) and without the helper itself.
fn linked_crates() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-p",
            "unitgate-helper",
            "-e",
            "normal,no-proc-macro",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo tree");
    assert!(out.status.success(), "cargo tree: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "unitgate-helper")
        .map(str::to_owned)
        .collect()
}

/// The crate names in the first column of the table under the heading.
fn documented_crates() -> BTreeSet<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/helper.md");
    let text = std::fs::read_to_string(doc).unwrap();
    let section = text
        .split("## What the helper is built from")
        .nth(1)
        .expect("docs/helper.md has the section")
        .split("\n## ")
        .next()
        .unwrap();
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.split('|').nth(1))
        .flat_map(|cell| {
            cell.split(',')
                .map(|c| c.trim().trim_matches('`').to_owned())
        })
        .collect()
}

#[test]
fn the_root_binary_links_only_the_crates_the_docs_give_a_reason_for() {
    let linked = linked_crates();
    let documented = documented_crates();
    let undocumented: Vec<_> = linked.difference(&documented).collect();
    let gone: Vec<_> = documented.difference(&linked).collect();
    assert!(
        undocumented.is_empty() && gone.is_empty(),
        "linked without a reason in docs/helper.md: {undocumented:?}; \
         documented but no longer linked: {gone:?}"
    );
    // The card's crates, where they serve the root binary.
    for needed in ["nix", "regex", "thiserror", "unitgate-policy"] {
        assert!(linked.contains(needed), "{needed} missing: {linked:?}");
    }
}
