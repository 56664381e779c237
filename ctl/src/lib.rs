//! unitgate: the host CLI.
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::from(64)
}
