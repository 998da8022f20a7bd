//! `sigil-solana-exec`: reads one JSON document on stdin, executes its
//! signed Solana transactions in an independent runtime, writes one JSON
//! document on stdout. See the library documentation for the contract.
//!
//! Exit status: 0 when the input was processed (whether or not its
//! transactions succeeded), 2 when the input is malformed (the reason on
//! stderr), 1 when the result cannot be written.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("sigil-solana-exec: cannot read the input: {e}");
        return ExitCode::from(2);
    }
    let output = match sigil_solana_runtime::run(&input) {
        Ok(output) => output,
        Err(e) => {
            eprintln!("sigil-solana-exec: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &output)
        .map_err(std::io::Error::from)
        .and_then(|()| writeln!(stdout))
        .and_then(|()| stdout.flush());
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigil-solana-exec: cannot write the result: {e}");
            ExitCode::FAILURE
        }
    }
}
