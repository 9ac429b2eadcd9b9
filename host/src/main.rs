//! The `obra` binary: see `obra --help`.

fn main() -> std::process::ExitCode {
    obra::cli::main()
}
