use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match loadmatrix::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                loadmatrix::exit_code::INVALID
            } else {
                loadmatrix::exit_code::OK
            });
        }
    };
    ExitCode::from(loadmatrix::commands::run(cli))
}
