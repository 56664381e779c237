//! unitgate-systemctl: the privileged helper.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(64)
}
