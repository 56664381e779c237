//! Runs every case of a corpus before failing, so one run reports every
//! case that fails, not only the first.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Calls `check` on each case (a failed assertion inside it is caught), then
/// fails once, listing each failing case by `name` with its message. Each
/// failure's own panic message is also printed as it happens.
pub fn check_each<T>(
    cases: impl IntoIterator<Item = T>,
    name: impl Fn(&T) -> String,
    check: impl Fn(&T),
) {
    let mut total = 0;
    let mut failures = Vec::new();
    for case in cases {
        total += 1;
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| check(&case))) {
            let why = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("- {}: {}", name(&case), why));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failing_case_is_reported_together() {
        let result = catch_unwind(|| {
            check_each(
                1..=5,
                |n| format!("case {n}"),
                |n| assert!(n % 2 == 0, "odd {n}"),
            );
        });
        let payload = result.expect_err("odd cases fail");
        let message = payload.downcast_ref::<String>().unwrap();
        assert!(message.starts_with("3 of 5 cases failed"), "{message}");
        for n in [1, 3, 5] {
            assert!(
                message.contains(&format!("- case {n}: odd {n}")),
                "{message}"
            );
        }
        assert!(!message.contains("case 2"), "{message}");
    }

    #[test]
    fn a_corpus_that_passes_passes() {
        check_each(["a", "b"], |s| s.to_string(), |s| assert!(!s.is_empty()));
    }
}
