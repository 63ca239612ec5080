//! The child processes this program starts, in one place: each leads a
//! process group of its own (so a signal reaches everything it started),
//! dies with this process, is stopped with SIGTERM, a grace period, then
//! SIGKILL to its whole group, and is always reaped; its end is told in
//! words, and its log is read from the end.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// Makes a child die with this process: SIGKILL on the parent's death
/// (PR_SET_PDEATHSIG). The signal follows the *thread* that spawns, so spawn
/// from a thread that lives as long as the child should.
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Makes the command's process lead a process group of its own.
pub(crate) fn own_group(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0)
}

/// Sends `sig` to the process group that `leader` leads. Only for a leader
/// not yet reaped: a reaped pid (and so its group id) may be someone else's.
pub(crate) fn signal_group(leader: u32, sig: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(leader) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals one process group.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);

/// Waits for `child` to exit until `deadline`; its status once it has.
pub(crate) fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
}

/// How a stopped child ended.
#[derive(Debug)]
pub enum Stopped {
    /// It had exited before the stop.
    Already(ExitStatus),
    /// It exited within the grace period.
    Exited(ExitStatus),
    /// Its group was killed after the grace period.
    Killed,
}

/// Stops `child`, the leader of a group that stops itself on SIGTERM (a
/// supervisor): SIGTERM to it, up to `grace` to exit, then SIGKILL to its
/// whole group. Always reaps it.
pub fn stop(child: &mut Child, grace: Duration) -> Stopped {
    if let Ok(Some(status)) = child.try_wait() {
        return Stopped::Already(status);
    }
    let pid = child.id();
    if let Ok(leader) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe {
            libc::kill(leader, libc::SIGTERM);
        }
    }
    if let Some(status) = wait_until(child, Instant::now() + grace) {
        return Stopped::Exited(status);
    }
    signal_group(pid, libc::SIGKILL);
    let _ = child.wait();
    Stopped::Killed
}

/// Runs `child` to its end for at most `limit`; killed and reaped past
/// it, when the answer is None.
pub fn bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let status = wait_until(child, Instant::now() + limit);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// The last `lines` lines of a log file.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(16 * 1024);
    let _ = f.seek(SeekFrom::Start(start));
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// How a process ended, as people say it: "exit status 1", or "killed by
/// signal 9 (SIGKILL)".
pub(crate) fn describe_exit(status: std::process::ExitStatus) -> String {
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
mod tests {
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
