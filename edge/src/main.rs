//! `arbor-edge`: run an edge from a TOML config (`--config`), or check one (`--check-config`).

fn main() -> std::process::ExitCode {
    arbor_edge::cli::main()
}
