//! Locust processes: spawned so that none outlives the driver, and stopped on
//! every exit path.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::base::process;
use crate::base::redact::Redactor;

/// How long the master may live on after writing its result.
const EXIT_AFTER_RESULT: Duration = Duration::from_secs(5);

/// How to start Locust: `[locust]` or `[python3, -m, locust]`.
#[derive(Debug, Clone)]
pub(super) struct Launcher {
    pub argv: Vec<OsString>,
}

pub(super) struct Proc {
    pub name: String,
    pub log: PathBuf,
    child: Child,
    status: Option<ExitStatus>,
    /// Its exit during the window was reported.
    pub lost_reported: bool,
    /// Threads copying its output into `log`, masked.
    pumps: Vec<thread::JoinHandle<()>>,
}

impl Proc {
    /// Exit status once exited (reaps the child).
    pub(crate) fn poll(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Ok(Some(s)) = self.child.try_wait()
        {
            self.status = Some(s);
            self.drain();
        }
        self.status
    }

    /// Lets the pumps write the last output of an exited process (so its log
    /// tail is whole), for at most a second: something the process started
    /// may still hold its pipes open.
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.pumps.iter().any(|p| !p.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        for p in std::mem::take(&mut self.pumps) {
            if p.is_finished() {
                let _ = p.join();
            }
        }
    }

    /// Signals the child's whole process group, unless it was already reaped
    /// (its pid, and so its group id, could then belong to someone else).
    pub fn signal(&mut self, sig: libc::c_int) {
        if self.poll().is_none() {
            process::signal_group(self.child.id(), sig);
        }
    }
}

/// The processes of one run. Dropping it kills whatever still runs.
#[derive(Default)]
pub(super) struct Procs {
    pub list: Vec<Proc>,
    /// Masks secrets in the processes' output on its way to their logs.
    pub redactor: Arc<Redactor>,
}

impl Procs {
    /// Spawns `launcher args` with stdout and stderr appended to `log`
    /// through the redactor.
    ///
    /// Must be called on the thread that waits for the run: PR_SET_PDEATHSIG
    /// fires when the spawning *thread* exits.
    pub fn spawn(
        &mut self,
        name: &str,
        launcher: &Launcher,
        args: &[OsString],
        env: &[(&str, OsString)],
        cwd: &Path,
        log: &Path,
    ) -> io::Result<()> {
        let Some((program, pre)) = launcher.argv.split_first() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty command"));
        };
        let out = Arc::new(Mutex::new(
            OpenOptions::new().create(true).append(true).open(log)?,
        ));
        let mut cmd = Command::new(program);
        cmd.args(pre)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own group, so a cancel reaches anything the locustfile started.
        process::own_group(&mut cmd);
        for (k, v) in env {
            cmd.env(k, v);
        }
        process::die_with_parent(&mut cmd);
        let mut child = cmd.spawn()?;
        let streams: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as _),
            child.stderr.take().map(|s| Box::new(s) as _),
        ];
        let pumps = streams
            .into_iter()
            .flatten()
            .map(|stream| {
                let (out, redactor) = (out.clone(), self.redactor.clone());
                thread::spawn(move || crate::base::redact::pump(stream, &*out, &redactor))
            })
            .collect();
        self.list.push(Proc {
            name: name.to_string(),
            log: log.to_path_buf(),
            child,
            status: None,
            lost_reported: false,
            pumps,
        });
        Ok(())
    }

    pub fn signal(&mut self, sig: libc::c_int) {
        for p in &mut self.list {
            p.signal(sig);
        }
    }

    /// Workers that exited while the window still ran ("Locust worker 2
    /// exited mid-window (killed by signal 9 (SIGKILL), 3.1 s in)"), each
    /// named once. An exit in the last second may be Locust's own shutdown
    /// and is not counted.
    pub(crate) fn lost_workers(&mut self, ran: Duration, run_secs: u64) -> Vec<String> {
        if ran + Duration::from_secs(1) >= Duration::from_secs(run_secs) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for w in self.list.iter_mut().skip(1) {
            if w.lost_reported {
                continue;
            }
            if let Some(status) = w.poll() {
                w.lost_reported = true;
                out.push(format!(
                    "Locust {} exited mid-window ({}, {:.1} s in)",
                    w.name,
                    process::describe_exit(status),
                    ran.as_secs_f64()
                ));
            }
        }
        out
    }

    /// A warning once the master has lived on [`EXIT_AFTER_RESULT`] after
    /// writing its result (`out`): something the locustfile started (a
    /// thread that is not a daemon) keeps it alive. Its processes are then
    /// stopped; the result is written, so the cell keeps it.
    pub(crate) fn outlived_result(
        &mut self,
        out: &Path,
        seen: &mut Option<Instant>,
    ) -> Option<String> {
        if !out.exists() {
            return None;
        }
        let since = *seen.get_or_insert_with(Instant::now);
        if since.elapsed() <= EXIT_AFTER_RESULT {
            return None;
        }
        self.stop(Duration::ZERO, Duration::from_secs(1));
        Some(format!(
            "the Locust master had not exited {} s after writing its results \
             (a non-daemon thread of the locustfile?): its processes were stopped",
            EXIT_AFTER_RESULT.as_secs()
        ))
    }

    pub(crate) fn all_exited(&mut self) -> bool {
        self.list.iter_mut().all(|p| p.poll().is_some())
    }

    /// Waits up to `grace` for every process to exit, then SIGTERM, then
    /// SIGKILL after `kill_after`; always reaps.
    pub fn stop(&mut self, grace: Duration, kill_after: Duration) {
        let t0 = Instant::now();
        while !self.all_exited() && t0.elapsed() < grace {
            thread::sleep(Duration::from_millis(20));
        }
        if self.all_exited() {
            return;
        }
        self.signal(libc::SIGTERM);
        let t1 = Instant::now();
        while !self.all_exited() && t1.elapsed() < kill_after {
            thread::sleep(Duration::from_millis(20));
        }
        self.kill_now();
    }

    fn kill_now(&mut self) {
        for p in &mut self.list {
            if p.poll().is_none() {
                p.signal(libc::SIGKILL);
                if let Ok(s) = p.child.wait() {
                    p.status = Some(s);
                }
            }
        }
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// Directories of a PATH value.
fn path_dirs(path: &OsString) -> Vec<PathBuf> {
    std::env::split_paths(path).collect()
}

fn executable_in(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter().map(|d| d.join(name)).find(|p| {
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// `locust` on `path`, else `python3 -m locust` if that Python has Locust.
pub(super) fn find_launcher(path: &OsString) -> Option<Launcher> {
    let dirs = path_dirs(path);
    if let Some(p) = executable_in(&dirs, "locust") {
        return Some(Launcher {
            argv: vec![p.into_os_string()],
        });
    }
    let python = executable_in(&dirs, "python3")?;
    let mut child = Command::new(&python)
        .args(["-c", "import locust"])
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let ok = process::bounded(&mut child, Duration::from_secs(30)).is_some_and(|s| s.success());
    ok.then(|| Launcher {
        argv: vec![python.into_os_string(), "-m".into(), "locust".into()],
    })
}
