//! `arbor`: the operator CLI. Everything lives in the `arbor_ops` library.

use std::process::ExitCode;

fn main() -> ExitCode {
    arbor_ops::main()
}
