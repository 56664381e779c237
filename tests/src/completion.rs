//! Shell completion as a shell drives it at a TAB: bash's completion
//! function, found with `complete -p` after loading the installed code and
//! called with `COMP_WORDS`, `COMP_CWORD`, `COMP_LINE` and `COMP_POINT` set,
//! as bash (and bash-completion's loader) call it.

use std::ffi::OsStr;

use crate::Machine;

/// What bash offers after `words` (the last one being the word under the
/// cursor, possibly empty), with the completion code at `script` loaded, as
/// `user` (root when `None`). Panics, with bash's output, when the code
/// does not register a function for `unitgate` or bash fails.
pub fn bash(m: &Machine, user: Option<&str>, script: &str, words: &[&str]) -> Vec<String> {
    let driver = format!(
        r#". '{script}' || exit 90
f=$(complete -p unitgate | sed -n 's/.* -F \([^ ]*\) .*unitgate$/\1/p')
[ -n "$f" ] || {{ echo "no completion function for unitgate: $(complete -p unitgate)" >&2; exit 91; }}
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${{#COMP_LINE}}
COMP_TYPE=9
COMPREPLY=()
"$f" unitgate "${{COMP_WORDS[COMP_CWORD]}}" "${{COMP_WORDS[COMP_CWORD-1]}}"
for c in "${{COMPREPLY[@]}}"; do printf '%s\n' "$c"; done"#
    );
    let mut argv = vec!["/bin/bash", "-c", driver.as_str(), "bash"];
    argv.extend_from_slice(words);
    let argv: Vec<&OsStr> = argv.iter().map(OsStr::new).collect();
    let out = match user {
        Some(u) => m.exec_as(u, &argv),
        None => m.exec(&argv),
    }
    .ok();
    out.stdout.lines().map(str::to_owned).collect()
}
