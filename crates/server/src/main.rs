fn main() -> std::process::ExitCode {
    smart_ticket::cli::main()
}
