//! The exposure score `systemd-analyze security` gives a scaffold's
//! template, measured offline (systemd 250 and later) on a copy with the
//! installer's prefix filled in, so that `new-app` can print it before
//! anything is installed.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The overall exposure (0.0 the safest, 10.0 the worst), or why it could
/// not be measured.
pub fn measure(app_dir: &Path, name: &str, prefix: &Path) -> Result<f64, String> {
    let unit = format!("{name}@.service");
    let text = std::fs::read_to_string(app_dir.join(&unit))
        .map_err(|e| format!("cannot read {unit} ({e})"))?;
    // A directory of our own (0700): the copy is read by systemd-analyze
    // alone, and nobody can swap it on the way.
    let dir = nix::unistd::mkdtemp(&std::env::temp_dir().join("unitgate-new-app.XXXXXX"))
        .map_err(|e| format!("cannot make a temporary directory ({e})"))?;
    let scored = score_copy(
        &dir.join(&unit),
        &text.replace("@PREFIX@", &prefix.to_string_lossy()),
    );
    let _ = std::fs::remove_dir_all(&dir);
    scored
}

fn score_copy(path: &Path, text: &str) -> Result<f64, String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {} ({e})", path.display()))?;
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(path)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| format!("cannot run systemd-analyze ({e})"))?;
    overall(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| {
        let err = String::from_utf8_lossy(&out.stderr);
        format!(
            "systemd-analyze security --offline=true gave no score ({}): {}",
            out.status,
            err.lines().last().unwrap_or("no message")
        )
    })
}

/// The number in "→ Overall exposure level for NAME: 0.2 SAFE 😀".
fn overall(report: &str) -> Option<f64> {
    report.lines().find_map(|line| {
        let (_, rest) = line.split_once("Overall exposure level for ")?;
        let (_, level) = rest.split_once(": ")?;
        level.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overall_level_is_read_from_the_report() {
        let report =
            "✓ UMask=  Files created …\n\n→ Overall exposure level for a@i.service: 1.1 OK 🙂\n";
        assert_eq!(overall(report), Some(1.1));
        assert_eq!(
            overall("Unit a@i.service has a bad unit file setting.\n"),
            None
        );
    }
}
