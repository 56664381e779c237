fn main() -> std::process::ExitCode {
    unitgate_helper::main()
}
