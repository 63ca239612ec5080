use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Die quietly when a pipe reader goes away (`loadmatrix ... | head`), as
    // other command-line tools do, instead of panicking on the next print.
    // SAFETY: restoring the default disposition of one signal at start-up.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
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
