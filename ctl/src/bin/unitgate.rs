fn main() -> std::process::ExitCode {
    unitgate_ctl::main()
}
