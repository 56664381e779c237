//! The real `unitgate` binary, driven by assert_cmd, for what needs no
//! root, no app installed and no container: usage errors and their exit
//! codes, `--help`, `--version`, the completion code and its answers, the
//! man pages, the colour rules and the `--json` error document. Fast: these
//! run before the end-to-end suite.

use std::collections::BTreeSet;
use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::*;
use predicates::str::contains;

/// Every command, as `unitgate --help` lists them (without `help`).
const COMMANDS: &[&str] = &[
    "install",
    "init",
    "start",
    "stop",
    "restart",
    "delete",
    "reset",
    "reconfigure",
    "status",
    "watch",
    "launch",
    "run",
    "kill",
    "limit",
    "tasks",
    "logs",
    "completions",
    "man",
    "new-app",
];

/// The binary with none of the variables that change what it does.
fn unitgate() -> Command {
    let mut cmd = Command::cargo_bin("unitgate").unwrap();
    for var in ["UNITGATE_APP", "UNITGATE_COMPLETE", "NO_COLOR", "COMPLETE"] {
        cmd.env_remove(var);
    }
    cmd.env("TERM", "xterm-256color");
    cmd
}

fn one_line() -> impl Predicate<str> {
    predicate::function(|s: &str| s.lines().count() == 1)
}

fn has_escape() -> impl Predicate<str> {
    contains("\x1b[")
}

/// stdout is exactly one JSON document, `{"error": {...}}`; returns it.
fn error_document(stdout: &[u8]) -> serde_json::Value {
    let text = std::str::from_utf8(stdout).unwrap();
    let mut docs = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let doc = docs.next().expect("a document").expect("valid JSON");
    assert!(docs.next().is_none(), "more than one document: {text}");
    let err = &doc["error"];
    for key in ["kind", "code", "message", "hint"] {
        assert!(!err[key].is_null(), "no {key}: {text}");
    }
    doc
}

#[test]
fn usage_errors_are_one_line_and_exit_64() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["--frob", "status"],
        &["start"],
        &["stop"],
        &["--wait", "soon", "status"],
        &["--color", "sometimes", "status"],
        &["new-app", "x", "--exec", "/bin/true", "--network", "wifi"],
        &["completions", "tcsh"],
        &["logs"],
        &["launch", "web1"],
    ] {
        unitgate().args(args).assert().code(64).stdout("").stderr(
            predicate::str::starts_with("unitgate: ")
                .and(one_line())
                .and(contains("unitgate --help"))
                .and(contains("panicked").not()),
        );
    }
}

#[test]
fn usage_errors_under_json_are_one_error_document() {
    for args in [
        &["--json"][..],
        &["--json", "frobnicate"],
        &["--json", "--color", "sometimes", "status"],
        &[
            "--json",
            "new-app",
            "x",
            "--exec",
            "/bin/true",
            "--network",
            "wifi",
        ],
        // The script and roff are not data: refused, not silently ignored.
        &["--json", "completions", "bash"],
        &["--json", "man"],
    ] {
        let out = unitgate().args(args).assert().code(64).get_output().clone();
        let doc = error_document(&out.stdout);
        assert_eq!(doc["error"]["kind"], "usage", "{args:?}: {doc}");
        assert_eq!(doc["error"]["code"], 64, "{args:?}: {doc}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(one_line().eval(&stderr), "{args:?}: {stderr}");
    }
}

#[test]
fn a_bad_app_name_is_65_from_the_flag_or_the_environment() {
    unitgate()
        .args(["--app", "../etc", "status"])
        .assert()
        .code(65)
        .stdout("")
        .stderr(predicate::str::starts_with("unitgate: ").and(one_line()));
    unitgate()
        .env("UNITGATE_APP", "Bad App")
        .args(["status"])
        .assert()
        .code(65)
        .stderr(one_line());
    let out = unitgate()
        .args(["--json", "--app", "Nope", "start", "web1"])
        .assert()
        .code(65)
        .get_output()
        .clone();
    let doc = error_document(&out.stdout);
    assert_eq!(doc["error"]["kind"], "bad-name", "{doc}");
    assert_eq!(doc["error"]["code"], 65, "{doc}");
}

#[test]
fn an_app_without_a_config_is_78() {
    let app = "unitgate-cli-test-no-such-app";
    unitgate()
        .args(["--app", app, "status"])
        .assert()
        .code(78)
        .stdout("")
        .stderr(contains(app).and(one_line()));
    let out = unitgate()
        .args(["--app", app, "--json", "status"])
        .assert()
        .code(78)
        .get_output()
        .clone();
    assert_eq!(error_document(&out.stdout)["error"]["code"], 78);
}

#[test]
fn help_shows_the_environment_exit_codes_and_examples() {
    unitgate()
        .arg("--help")
        .assert()
        .success()
        .stderr("")
        .stdout(
            contains("UNITGATE_APP")
                .and(contains("NO_COLOR"))
                .and(contains("--color <WHEN>"))
                .and(contains("Examples:"))
                .and(contains("unitgate --json status"))
                .and(contains("64  usage"))
                .and(contains("75  busy"))
                .and(contains("78  app config problem"))
                .and(contains("unitgate.schema.json"))
                .and(contains("man unitgate-start")),
        );
    for name in COMMANDS {
        unitgate().args([name, "--help"]).assert().success().stdout(
            contains("Examples:")
                .and(contains(format!("man unitgate-{name}")))
                .and(contains("Exit status: 0"))
                .and(contains("UNITGATE_APP")),
        );
    }
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_0() {
    // The read end is gone before unitgate starts: every write fails
    // with EPIPE (Rust ignores SIGPIPE), as under `unitgate man | head -0`.
    for args in [
        &["--help"][..],
        &["man"],
        &["completions", "bash"],
        &["start", "--help"],
    ] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let out = std::process::Command::new(assert_cmd::cargo::cargo_bin("unitgate"))
            .args(args)
            .stdout(std::process::Stdio::from(write))
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert!(out.stderr.is_empty(), "{args:?}: {out:?}");
    }
}

#[test]
fn version_is_the_crate_version() {
    unitgate()
        .arg("--version")
        .assert()
        .success()
        .stdout(format!("unitgate {}\n", env!("CARGO_PKG_VERSION")))
        .stderr("");
}

#[test]
fn completion_code_for_each_shell_calls_back_under_our_variable() {
    let cases = [
        ("bash", "complete -o nospace"),
        ("zsh", "#compdef unitgate"),
        // Autoloaded from $fpath, it completes at the first TAB.
        (
            "zsh",
            "${funcstack[1]} == _unitgate ]]; then _clap_dynamic_completer_unitgate",
        ),
        ("fish", "complete --keep-order"),
        ("elvish", "set edit:completion:arg-completer[unitgate]"),
        ("powershell", "Register-ArgumentCompleter"),
    ];
    for (shell, marker) in cases {
        unitgate()
            .args(["completions", shell])
            .assert()
            .success()
            .stderr("")
            .stdout(
                contains(marker)
                    .and(contains("UNITGATE_COMPLETE"))
                    .and(contains(shell)),
            );
    }
}

/// What `unitgate` offers at a TAB in bash after `words` (the last one
/// being completed), from `dir`.
fn offered(dir: &Path, words: &[&str]) -> Vec<String> {
    let out = unitgate()
        .current_dir(dir)
        .env("UNITGATE_COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", (words.len() - 1).to_string())
        .env("_CLAP_IFS", "\n")
        .env("_CLAP_COMPLETE_COMP_TYPE", "9")
        .env("_CLAP_COMPLETE_SPACE", "true")
        .arg("--")
        .args(words)
        .assert()
        .success()
        .stderr("")
        .get_output()
        .clone();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn tab_offers_commands_value_lists_and_never_file_names_for_an_app() {
    let dir = tempfile::tempdir().unwrap();
    // What a file-name completion would offer.
    std::fs::write(dir.path().join("demo.toml"), "").unwrap();
    std::fs::create_dir(dir.path().join("demo-dir")).unwrap();
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<String>>();
    let words = |w: &[&str]| set(offered(dir.path(), w));

    let top = words(&["unitgate", ""]);
    for name in COMMANDS {
        assert!(top.contains(*name), "{name} not offered: {top:?}");
    }
    assert_eq!(
        words(&["unitgate", "start", "--color", ""]),
        set(vec!["auto".into(), "always".into(), "never".into()])
    );
    assert_eq!(
        words(&["unitgate", "--color=n"]),
        set(vec!["--color=never".into()])
    );
    assert_eq!(
        words(&["unitgate", "new-app", "x", "--network", ""]),
        set(vec!["none".into(), "inet".into()])
    );
    assert_eq!(
        words(&["unitgate", "new-app", "x", "--profile", ""]),
        set(vec![
            "x11".into(),
            "tmux".into(),
            "inet-in".into(),
            "inet-out".into()
        ])
    );
    let shells = words(&["unitgate", "completions", ""]);
    for shell in ["bash", "zsh", "fish"] {
        assert!(shells.contains(shell), "{shells:?}");
    }
    for w in [
        &["unitgate", "--app", ""][..],
        &["unitgate", "--app", "de"],
        &["unitgate", "--app=de"],
    ] {
        let got = words(w);
        assert!(
            got.iter()
                .all(|c| !c.contains("demo.toml") && !c.contains("demo-dir")),
            "{w:?} offers files: {got:?}"
        );
    }
}

#[test]
fn a_completion_request_for_an_unknown_shell_fails_quietly() {
    unitgate()
        .env("UNITGATE_COMPLETE", "tcsh")
        .args(["--", "unitgate", ""])
        .assert()
        .failure()
        .stdout("")
        .stderr("");
    // "0" and empty are no request: the command runs.
    for off in ["0", ""] {
        unitgate()
            .env("UNITGATE_COMPLETE", off)
            .arg("--version")
            .assert()
            .success()
            .stdout(contains("unitgate "));
    }
}

/// `\fBname\fR(N)` and `.BR name (N)`: the pages a page points at.
fn references(roff: &str) -> Vec<String> {
    let mut refs = Vec::new();
    for line in roff.lines() {
        if let Some(rest) = line.strip_prefix(".BR ") {
            let mut it = rest.split_whitespace();
            if let (Some(name), Some(sect)) = (it.next(), it.next()) {
                let sect = sect.trim_start_matches('(').trim_end_matches([')', ',']);
                refs.push(format!("{}.{sect}", name.replace("\\-", "-")));
            }
        }
        let mut rest = line;
        while let Some(at) = rest.find("\\fB") {
            rest = &rest[at + 3..];
            let Some(end) = rest.find("\\fR(") else { break };
            let name = &rest[..end];
            let after = &rest[end + 4..];
            if let Some(close) = after.find(')') {
                let sect = &after[..close];
                if !name.contains(' ') && sect.chars().all(|c| c.is_ascii_digit()) {
                    refs.push(format!("{}.{sect}", name.replace("\\-", "-")));
                }
            }
            rest = after;
        }
    }
    refs
}

#[test]
fn man_writes_one_page_per_command_and_every_reference_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let listed = unitgate()
        .args(["man", "--dir"])
        .arg(&pages)
        .args(["--prefix", "/usr"])
        .assert()
        .success()
        .stderr("")
        .get_output()
        .stdout
        .clone();
    let mut want: BTreeSet<String> = COMMANDS.iter().map(|c| format!("unitgate-{c}.1")).collect();
    want.insert("unitgate.1".into());
    let have: BTreeSet<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(have, want, "no temporary file left, no page missing");
    assert_eq!(
        String::from_utf8(listed).unwrap().lines().count(),
        want.len()
    );

    let mut seen = 0;
    for name in &have {
        let roff = std::fs::read_to_string(pages.join(name)).unwrap();
        let title = name.trim_end_matches(".1");
        assert!(roff.contains(&format!(".TH {title} 1")), "{name}");
        for section in [
            "NAME",
            "SYNOPSIS",
            "OPTIONS",
            "EXIT STATUS",
            "ENVIRONMENT",
            "FILES",
            "JSON OUTPUT",
            "EXAMPLES",
            "SEE ALSO",
        ] {
            assert!(
                roff.contains(&if section.contains(' ') {
                    format!(".SH \"{section}\"")
                } else {
                    format!(".SH {section}")
                }),
                "{name}: {section}"
            );
        }
        assert!(roff.contains("UNITGATE_APP"), "{name}");
        if ![
            "unitgate-completions.1",
            "unitgate-man.1",
            "unitgate-launch.1",
            "unitgate-logs.1",
        ]
        .contains(&name.as_str())
        {
            assert!(
                roff.contains("/usr/share/unitgate/schema/unitgate.schema.json"),
                "{name}: where the schema is"
            );
        }
        let refs = references(&roff);
        assert!(!refs.is_empty(), "{name} points at no page");
        for r in refs {
            assert!(have.contains(&r), "{name} refers to {r}, which is no page");
            seen += 1;
        }
    }
    // unitgate(1) alone names every command's page.
    assert!(seen > 2 * COMMANDS.len(), "{seen} references");
}

#[test]
fn the_reference_check_sees_every_kind_of_reference() {
    // The check above must be able to fail: a page that is not generated
    // is found, in both spellings.
    let refs =
        references(".SH SEE ALSO\n\\fBunitgate\\fR(1), \\fBunitgate\\-nope\\fR(1)\n.BR sudo (8)\n");
    assert_eq!(refs, ["unitgate.1", "unitgate-nope.1", "sudo.8"]);
}

#[test]
fn man_prints_unitgate_1_and_refuses_an_unwritable_directory() {
    unitgate()
        .arg("man")
        .assert()
        .success()
        .stdout(contains(".TH unitgate 1").and(contains(".SH COMMANDS")));
    unitgate()
        .args(["man", "--dir", "/proc/version/man1"])
        .assert()
        .code(74)
        .stdout("")
        .stderr(predicate::str::starts_with("unitgate: ").and(one_line()));
}

/// Runs unitgate under a pseudo-terminal (util-linux `script`), so that
/// stdout is a terminal, with only `env` set; returns what it printed.
fn on_a_terminal(env: &[(&str, &str)], args: &str) -> String {
    let bin = assert_cmd::cargo::cargo_bin("unitgate");
    let output = std::process::Command::new("script")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().copied())
        .env("UNITGATE_BIN", &bin)
        .args([
            "-q",
            "-e",
            "-c",
            &format!("\"$UNITGATE_BIN\" {args}"),
            "/dev/null",
        ])
        .output()
        .expect("util-linux script(1) runs a command on a pseudo-terminal");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn colour_follows_color_no_color_term_and_the_terminal() {
    // Not a terminal (assert_cmd's pipe): never, unless --color always,
    // which wins over NO_COLOR and TERM=dumb.
    unitgate().arg("--help").assert().stdout(has_escape().not());
    unitgate()
        .args(["--color", "always", "--help"])
        .assert()
        .stdout(has_escape());
    unitgate()
        .args(["start", "--help", "--color=always"])
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .assert()
        .stdout(has_escape());
    // JSON never.
    unitgate()
        .args(["--json", "--color", "always", "--app", "Bad", "status"])
        .assert()
        .code(65)
        .stdout(has_escape().not().and(contains("bad-name")));

    // A terminal: yes, unless NO_COLOR is set and not empty, TERM is dumb
    // or --color never.
    let xterm = ("TERM", "xterm");
    for env in [&[xterm][..], &[xterm, ("NO_COLOR", "")]] {
        let out = on_a_terminal(env, "--help");
        assert!(has_escape().eval(&out), "{env:?}: {out:?}");
    }
    for (env, args) in [
        (&[xterm, ("NO_COLOR", "1")][..], "--help"),
        (&[("TERM", "dumb")], "--help"),
        (&[xterm], "--color never --help"),
    ] {
        let out = on_a_terminal(env, args);
        assert!(out.contains("Usage:"), "{out:?}");
        assert!(!has_escape().eval(&out), "{env:?} {args}: {out:?}");
    }
}
