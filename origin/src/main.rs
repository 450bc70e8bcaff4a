//! `arbor-origin`: run the origin from a TOML config (`--config`), or check one
//! (`--check-config`).

fn main() -> std::process::ExitCode {
    arbor_origin::cli::main()
}
