fn main() -> std::process::ExitCode {
    archive_node::cli::main()
}
