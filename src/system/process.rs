//! Short-lived commands (exec steps, command checks) in their own process
//! group: a timeout or a stop request ends the whole group at once, so a
//! wrapped command (`sh -c ...`) leaves nothing behind.

use std::process::{Output, Stdio};
use std::time::Duration;

use crate::cancel::CancelToken;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("cannot run `{command}`: {error}")]
    Spawn {
        command: String,
        error: std::io::Error,
    },
    #[error("`{command}` still running after {timeout:?}: killed")]
    TimedOut { command: String, timeout: Duration },
    #[error("interrupted")]
    Interrupted,
}

/// `argv` as given, or joined into one `sh -c` line when `shell` is set.
pub fn command(argv: &[String], shell: bool) -> std::process::Command {
    let mut c;
    if shell {
        c = std::process::Command::new("sh");
        c.arg("-c").arg(argv.join(" "));
    } else {
        c = std::process::Command::new(argv.first().map_or("", String::as_str));
        c.args(argv.iter().skip(1));
    }
    c
}

/// How often a running command checks for a stop request.
const POLL: Duration = Duration::from_millis(50);

/// Runs `cmd` to completion with its output captured, bounded by `timeout`
/// and by `cancel`: either ends its whole process group.
pub async fn run(
    mut cmd: std::process::Command,
    shown: &str,
    timeout: Duration,
    cancel: &CancelToken,
) -> Result<Output, CommandError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    crate::base::process::own_group(&mut cmd);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().map_err(|error| CommandError::Spawn {
        command: shown.to_string(),
        error,
    })?;
    let leader = child.id();
    let stopped = async {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if cancel.is_cancelled() {
                return CommandError::Interrupted;
            }
            if tokio::time::Instant::now() >= deadline {
                return CommandError::TimedOut {
                    command: shown.to_string(),
                    timeout,
                };
            }
            tokio::time::sleep(POLL).await;
        }
    };
    tokio::select! {
        out = child.wait_with_output() => out.map_err(|error| CommandError::Spawn {
            command: shown.to_string(),
            error,
        }),
        why = stopped => {
            if let Some(leader) = leader {
                crate::base::process::signal_group(leader, libc::SIGKILL);
            }
            Err(why)
        }
    }
}
