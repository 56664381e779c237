//! Input: an instance environment file, a NUL byte, then one argument of
//! `unitgate launch`. The file is the service account's to write and
//! `launch` parses it on every start: parsing and expanding must never
//! panic, and every value parsed must survive the writer's quoting.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use unitgate_ctl::{envfile, launch};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |&b| b == 0);
    let text = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let arg = OsStr::from_bytes(parts.next().unwrap_or_default());
    let Ok(vars) = envfile::parse(&text) else {
        return;
    };
    let mut keys: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), vars.len(), "a key appears once");
    for (k, v) in &vars {
        if v.chars().any(char::is_control) {
            continue; // init refuses these; they cannot be written on one line
        }
        let again = envfile::parse(&format!("{k}={}\n", envfile::quote(v))).expect("quoted parses");
        assert_eq!(again, [(k.clone(), v.clone())]);
    }
    if let Ok(out) = launch::expand(arg, &vars) {
        if !arg.as_bytes().windows(2).any(|w| w == b"${") {
            assert_eq!(out, arg, "nothing to expand, nothing changed");
        }
    }
});
