//! `loadmatrix supervise`: the parent of one local replica's process group.
//!
//! A replica's command may be a wrapper (`bash -c '...'`) whose children
//! would outlive a signal sent to the wrapper alone, and a SIGKILLed
//! loadmatrix cannot clean up at all. So each replica runs under this small
//! supervisor, which leads the process group: it learns of loadmatrix's
//! death through a catchable parent-death signal, stops the whole group
//! (SIGTERM, then SIGKILL after a grace period), and passes the replica's
//! output through the redactor before it reaches the log file, so no secret
//! touches the disk even for a moment. The secrets arrive on standard input,
//! never in arguments or the environment.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::base::process;
use crate::base::redact::Redactor;

/// How long a replica's group gets to exit after SIGTERM before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct SuperviseArgs {
    /// Append the command's redacted output here.
    #[arg(long)]
    pub log: PathBuf,
    /// The replica's command and its arguments.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: plain signal-mask calls on a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Signals the group this supervisor leads.
fn signal_group(sig: libc::c_int) {
    // SAFETY: getpgrp(2) cannot fail.
    let group = unsafe { libc::getpgrp() };
    process::signal_group(group.unsigned_abs(), sig);
}

/// Runs the supervisor; returns the replica's exit code.
pub fn supervise(args: SuperviseArgs) -> Result<i32, String> {
    let parent = std::os::unix::process::parent_id();
    let mut secrets = String::new();
    let _ = std::io::stdin().read_to_string(&mut secrets);
    let secrets: Vec<String> = serde_json::from_str(&secrets).unwrap_or_default();
    let redactor = Arc::new(Redactor::new(&secrets));
    // Stop signals are taken by one thread with sigwait, never by a handler.
    let set = block_stop_signals();
    // SAFETY: prctl with constant arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong) } != 0 {
        return Err(format!(
            "prctl(PR_SET_PDEATHSIG): {}",
            std::io::Error::last_os_error()
        ));
    }
    if std::os::unix::process::parent_id() != parent {
        return Ok(1);
    }
    let (program, rest) = args.argv.split_first().ok_or("empty command")?;
    let program = if program == "loadmatrix" {
        std::env::current_exe().map_err(|e| e.to_string())?
    } else {
        PathBuf::from(program)
    };
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.log)
        .map_err(|e| format!("cannot open {}: {e}", args.log.display()))?;
    let log = Arc::new(Mutex::new(log));
    let mut cmd = Command::new(&program);
    cmd.args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let msg = format!("cannot start `{}`: {e}\n", args.argv.join(" "));
            let _ = log
                .lock()
                .map(|mut f| f.write_all(&redactor.redact_bytes(msg.as_bytes())));
            return Ok(127);
        }
    };
    let mut pumps = Vec::new();
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let log = log.clone();
        let redactor = redactor.clone();
        pumps.push(std::thread::spawn(move || {
            crate::base::redact::pump(stream, &*log, &redactor)
        }));
    }
    let stop_requested = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let stop_requested = stop_requested.clone();
        std::thread::spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait on the set blocked above.
            unsafe { libc::sigwait(&set, &mut sig) };
            stop_requested.store(true, std::sync::atomic::Ordering::SeqCst);
            signal_group(libc::SIGTERM);
        });
    }
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status;
        }
        if stop_requested.load(std::sync::atomic::Ordering::SeqCst) {
            match process::wait_until(&mut child, Instant::now() + STOP_GRACE) {
                Some(s) => break s,
                None => {
                    let _ = child.kill();
                    break child.wait().map_err(|e| e.to_string())?;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the replica left running in its group goes with it; the pipes
    // close once every writer is gone.
    let others_alive = group_members() > 1;
    if others_alive {
        signal_group(libc::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while group_members() > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if group_members() > 1 {
        // The pumps may still hold output: flush what has arrived, then end the group.
        if let Ok(mut f) = log.lock() {
            let _ = f.flush();
        }
        signal_group(libc::SIGKILL);
    }
    for p in pumps {
        let _ = p.join();
    }
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status)
        && !stop_requested.load(std::sync::atomic::Ordering::SeqCst)
    {
        // Die the way the replica died, so loadmatrix can say "killed by
        // signal 9 (SIGKILL)" rather than a made-up exit code.
        die_by(sig);
        return Ok(128 + sig);
    }
    Ok(status.code().unwrap_or(1))
}

/// Ends this process with `sig` (default action, unblocked); returns only
/// if the signal does not end a process or would leave a core dump.
fn die_by(sig: libc::c_int) {
    if matches!(
        sig,
        libc::SIGQUIT | libc::SIGILL | libc::SIGABRT | libc::SIGBUS | libc::SIGFPE | libc::SIGSEGV
    ) {
        return;
    }
    // SAFETY: resetting one signal's disposition and mask, then raising it.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, sig);
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(sig);
    }
}

/// Processes in our process group (ourselves included), from /proc.
fn group_members() -> usize {
    // SAFETY: getpgrp has no preconditions.
    let pgid = unsafe { libc::getpgrp() } as u32;
    super::proc_stats::group_pids(pgid).len()
}
