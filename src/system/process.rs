//! Short-lived commands (exec steps, command checks) in their own process
//! group: a timeout or a stop request ends the whole group at once, so a
//! wrapped command (`sh -c ...`) leaves nothing behind.

use std::os::unix::process::CommandExt as _;
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
        .stderr(Stdio::piped())
        .process_group(0);
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let child = cmd.spawn().map_err(|error| CommandError::Spawn {
        command: shown.to_string(),
        error,
    })?;
    let pgid = child.id().map(|p| p as i32);
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
            if let Some(pgid) = pgid {
                // SAFETY: kill(2) on the process group our child leads.
                unsafe { libc::kill(-pgid, libc::SIGKILL); }
            }
            Err(why)
        }
    }
}

/// How a process ended, as people say it: "exit status 1", or "killed by
/// signal 9 (SIGKILL)".
pub fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => match signal_name(sig) {
            Some(name) => format!("killed by signal {sig} ({name})"),
            None => format!("killed by signal {sig}"),
        },
        _ => status.to_string(),
    }
}

fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        _ => return None,
    })
}

#[cfg(test)]
mod exit_tests {
    use super::*;

    #[test]
    fn a_signal_is_named_not_reported_as_an_exit_code() {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
        assert_eq!(
            describe_exit(std::process::ExitStatus::from_raw(1 << 8)),
            "exit status 1"
        );
    }
}
