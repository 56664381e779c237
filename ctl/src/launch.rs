//! `unitgate launch`: the first program of an instance's unit, run by
//! systemd as the unit's `User=`. It reads the instance's environment file
//! itself and execs the real program with it.
//!
//! Why not `EnvironmentFile=`: PID 1 reads that file as root and follows
//! links, and the file lives in the service account's own directory. The
//! account could point it at any root-only file and read the secret back
//! from its own service's environment. Here the reader is the account
//! itself, so a link can only reach what the account could read anyway.
//!
//! Arguments may name variables of the file as `${NAME}` (write `$${NAME}`
//! in the unit file, because systemd expands `${NAME}` itself, to nothing
//! when the unit has no such variable). An unknown name is an error, not an
//! empty string.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::CommandExt;

use crate::app::App;
use crate::error::{Error, Result};
use crate::store::Store;

/// Execs `argv` (absolute program, then its arguments) with the instance's
/// environment. Returns only on failure.
pub fn run(app: &App, instance: &str, argv: &[OsString]) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Err(Error::NotPermitted {
            what: "`unitgate launch` does not run as root: root would read the service account's files".into(),
            hint: format!(
                "give the unit a User= (the app's service account), as the templates unitgate ships do; see {}",
                app.config_path.display()
            ),
        });
    }
    let instance = &app.instance(instance)?;
    let (program, args) = argv.split_first().ok_or_else(|| {
        Error::usage(
            "launch needs the program to run",
            "write `unitgate launch INSTANCE -- /abs/program ARGS...`",
        )
    })?;
    if !program.as_bytes().starts_with(b"/") {
        return Err(Error::usage(
            format!(
                "the program {} is not an absolute path",
                program.to_string_lossy()
            ),
            "name it by its absolute path, as ExecStart= does",
        ));
    }
    let store = Store::open(app)?;
    let env = store.environment(instance)?.ok_or_else(|| {
        if store.exists(instance.as_str()) {
            Error::Config {
                what: format!(
                    "instance '{instance}' has no environment file {}",
                    app.instance_dir(instance).join(&app.env_file).display()
                ),
                hint: format!("delete and re-create it: `unitgate delete {instance}; unitgate init {instance}`"),
            }
        } else {
            Error::NoSuchInstance {
                instance: instance.to_string(),
            }
        }
    })?;
    let args = args
        .iter()
        .map(|a| expand(a, &env.vars))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(|why| Error::Config {
            what: format!("launch of instance '{instance}': {why}"),
            hint: format!(
                "set it in the app's [env], or `unitgate init {instance} --set NAME=VALUE`"
            ),
        })?;
    let err = std::process::Command::new(program)
        .args(args)
        .envs(env.vars.iter().map(|(k, v)| (k, v)))
        .exec();
    Err(match err.kind() {
        std::io::ErrorKind::NotFound => Error::Config {
            what: format!(
                "cannot run {}: it does not exist",
                program.to_string_lossy()
            ),
            hint: "fix ExecStart= in the unit template, or install the program".into(),
        },
        _ => Error::io(format!("cannot run {}", program.to_string_lossy()), err),
    })
}

/// `${NAME}` replaced by the variable's value; other text, including a lone
/// `$`, is kept as it is.
pub fn expand(arg: &OsStr, vars: &[(String, String)]) -> std::result::Result<OsString, String> {
    let bytes = arg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = find(rest, b"${") {
        out.extend_from_slice(&rest[..at]);
        let after = &rest[at + 2..];
        let end = find(after, b"}")
            .ok_or_else(|| format!("unclosed `${{` in argument '{}'", arg.to_string_lossy()))?;
        let name = std::str::from_utf8(&after[..end]).unwrap_or("");
        let value = vars
            .iter()
            .rev()
            .find_map(|(k, v)| (k == name).then_some(v))
            .ok_or_else(|| {
                format!(
                    "argument '{}' uses ${{{}}}, which the instance's environment file does not set",
                    arg.to_string_lossy(),
                    String::from_utf8_lossy(&after[..end])
                )
            })?;
        out.extend_from_slice(value.as_bytes());
        rest = &after[end + 1..];
    }
    out.extend_from_slice(rest);
    Ok(OsString::from_vec(out))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("PORT".into(), "27015".into()),
            ("NAME".into(), "a b".into()),
        ]
    }

    fn ex(s: &str) -> std::result::Result<String, String> {
        expand(OsStr::new(s), &vars()).map(|o| o.to_string_lossy().into_owned())
    }

    #[test]
    fn variables_expand_in_place_as_one_argument() {
        assert_eq!(ex("${PORT}").unwrap(), "27015");
        assert_eq!(ex("-port=${PORT}/${NAME}").unwrap(), "-port=27015/a b");
        assert_eq!(ex("$PORT $ 100$").unwrap(), "$PORT $ 100$");
        assert_eq!(ex("plain").unwrap(), "plain");
    }

    #[test]
    fn unknown_or_unclosed_variables_are_errors() {
        assert!(ex("${NOPE}").unwrap_err().contains("NOPE"));
        assert!(ex("x${PORT").unwrap_err().contains("unclosed"));
        assert!(ex("${}").is_err());
    }
}
