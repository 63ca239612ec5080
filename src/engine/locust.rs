//! Locust engine driver: one headless distributed Locust run per call.
//!
//! # Warm-up exclusion
//!
//! Locust keeps one cumulative, time-less response-time histogram per request
//! name. Its CSV history has cumulative counts per second but only
//! percentiles, and resetting its stats (`/stats/reset`, `--reset-stats`)
//! clears the master alone: up to 3 s of warm-up samples that workers have not
//! reported yet land in the measured window. None of that is exact.
//!
//! So the driver loads a small probe module next to the locustfile
//! (`-f LOCUSTFILE,loadmatrix_locust_probe.py`, see `locust/probe.py`). On each
//! worker it records every request, bucketed with Locust's own
//! `bucket_response_time`, as warm-up or measured: a request counts as
//! measured if it completed after that worker received the master's
//! end-of-warm-up message, sent `warmup` after Locust's `test_start`. Measured
//! requests are also recorded per second of the window. The data rides in
//! Locust's own worker reports, so it covers exactly the requests Locust
//! counts (warm-up + measured = Locust's totals, checked and warned about
//! otherwise), and the master writes the merged result when Locust quits.
//! Latencies are therefore exact up to Locust's rounding; the timeline's
//! percentiles are true per-second percentiles of the same samples.
//!
//! External workers must load the probe too: start them with
//! `locust --worker -f - --master-host H --master-port P`, which fetches the
//! locustfile and the probe from the master. Reports without probe data fail
//! the run with [`LocustError::ProbeMissing`].
//!
//! # Other figures
//!
//! - Failures: classified on the worker from the exception Locust reports:
//!   timeouts -> `timeout`, refused / unestablished connections -> `connect`,
//!   a response with a status outside 2xx/3xx (or an `HTTPError`) -> `status`,
//!   anything else (e.g. a `catch_response` failure on a 200) -> `io`. As in
//!   the native engine, failures carry no latency (Locust's own percentiles
//!   include them).
//! - `by_name` keys are Locust's request names; a name seen with several
//!   methods is split into `"METHOD name"` keys.
//! - Timeline: per second of the measured window, by completion time on the
//!   worker; `users` is the master's user count at the end of each second
//!   (Locust learns counts from worker messages, so a start-of-second sample
//!   would lag a ramp).
//! - `client_cpu_pct`: CPU seconds of the worker processes over their
//!   measured wall time (100% = one core per worker). `client_bound` is set
//!   if that reaches 90% or any Locust process logged its "CPU usage above
//!   90%" warning (Locust checks every 10 s, so short runs rarely log it).
//! - `--run-time` takes whole seconds: warm-up + duration is rounded up.
//!
//! Locust's `--csv` (with `--csv-full-history`) and `--json-file` outputs are
//! still written to `work_dir` (`locust_stats*.csv`, `locust.json`) for
//! people to read. The probe wraps the request event's `fire`, so it sees
//! every request before any locustfile listener can stop the event; its
//! counts (warm-up + measured) are compared with `locust.json` in total and
//! per request name, and any difference makes the result
//! [`CellStats::degraded`], with Locust's figures in the message.
//!
//! A locustfile with a `LoadTestShape` is refused ([`LocustError::LoadShape`])
//! as soon as the master has loaded it: the shape would replace the users and
//! run time of the cell.

mod args;
mod ingest;
mod logs;
mod process;

use args::{master_args, worker_args};
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::thread;
use std::time::{Duration, Instant};

use super::spec::{Phase, ProgressTick};
use super::stats::CellStats;
use crate::cancel::CancelToken;
use ingest::{Context, ProbeOutput, ProgressLine};
use process::{Launcher, Procs};

/// One Locust run: a headless master plus `workers` worker processes.
#[derive(Debug, Clone)]
pub struct LocustSpec {
    pub locustfile: PathBuf,
    /// Base URL given to `--host`, e.g. `http://127.0.0.1:8080`.
    pub host: String,
    pub users: u64,
    /// Users started per second; 0 starts them all at once.
    pub spawn_rate: f64,
    /// Worker processes to start, or to wait for when `external_workers`.
    pub workers: usize,
    /// Start no workers; wait for `workers` to connect (started with
    /// `locust --worker -f - --master-host H --master-port P`).
    pub external_workers: bool,
    /// `--master-bind-host`; `*` or `0.0.0.0` for every interface.
    pub master_bind: String,
    /// `--master-bind-port`; 0 picks a free one, or Locust's default 5557
    /// with `external_workers` (where `locust --worker` connects by default).
    pub master_port: u16,
    /// `--tags`: only tasks with one of these tags run.
    pub tags: Vec<String>,
    /// User classes to run; empty runs all of them.
    pub user_classes: Vec<String>,
    /// Extra arguments for the master, appended last.
    pub args: Vec<String>,
    pub warmup: Duration,
    pub duration: Duration,
    /// Where CSV/JSON outputs, the probe and the process logs
    /// (`locust-master.log`, `locust-worker-N.log`) go. Locust itself runs in
    /// the locustfile's directory, as if started there by hand.
    pub work_dir: PathBuf,
    /// How long to wait for every worker to connect.
    pub expect_workers_timeout: Duration,
    /// PEM roots Locust's HTTP clients trust (`[tls] ca`): the `verify`
    /// bundle of every HttpUser session, and `REQUESTS_CA_BUNDLE` and
    /// `SSL_CERT_FILE` for other clients a locustfile uses.
    pub ca_bundle: Option<PathBuf>,
    /// `[tls] insecure`: Locust's HTTP clients accept any certificate.
    pub insecure: bool,
    /// `PATH` used to find Locust and given to its processes; `None` uses
    /// this process's `PATH`.
    pub path: Option<OsString>,
    /// Masks secrets in the processes' output before it reaches their logs.
    pub redactor: std::sync::Arc<crate::base::redact::Redactor>,
}

impl LocustSpec {
    pub(crate) const DEFAULT_EXPECT_WORKERS_TIMEOUT: Duration = Duration::from_secs(30);

    /// One worker, one user, all defaults; set the rest field by field.
    pub fn new(locustfile: impl Into<PathBuf>, host: &str, work_dir: impl Into<PathBuf>) -> Self {
        LocustSpec {
            locustfile: locustfile.into(),
            host: host.to_string(),
            users: 1,
            spawn_rate: 0.0,
            workers: 1,
            external_workers: false,
            master_bind: "127.0.0.1".into(),
            master_port: 0,
            tags: Vec::new(),
            user_classes: Vec::new(),
            args: Vec::new(),
            warmup: Duration::ZERO,
            duration: Duration::from_secs(10),
            work_dir: work_dir.into(),
            expect_workers_timeout: Self::DEFAULT_EXPECT_WORKERS_TIMEOUT,
            ca_bundle: None,
            insecure: false,
            path: None,
            redactor: Default::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LocustError {
    #[error("invalid Locust run: {0}")]
    InvalidSpec(String),
    #[error(
        "Locust is not installed: no `locust` executable and no `python3` with the locust \
         module on PATH ({path}); install it with `pip install locust`"
    )]
    NotInstalled { path: String },
    #[error("cannot write {path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot start the Locust {process}: {error}")]
    Spawn {
        process: String,
        error: std::io::Error,
    },
    #[error(
        "Locust could not load the locustfile {locustfile} (the {process} exited with {status}); \
         Locust's output ends with:\n{stderr_tail}"
    )]
    Locustfile {
        locustfile: PathBuf,
        process: String,
        status: String,
        stderr_tail: String,
    },
    #[error(
        "the Locust {process} exited with {status} before the test started; \
         its output ends with:\n{stderr_tail}"
    )]
    StartFailed {
        process: String,
        status: String,
        stderr_tail: String,
    },
    #[error(
        "only {connected} of {expected} Locust workers connected within {waited_secs} s; \
         the master's output ends with:\n{stderr_tail}"
    )]
    WorkersMissing {
        expected: usize,
        connected: u64,
        waited_secs: u64,
        stderr_tail: String,
    },
    #[error(
        "the Locust master exited with {status} without writing results; \
         its output ends with:\n{stderr_tail}"
    )]
    MasterExited { status: String, stderr_tail: String },
    #[error(
        "the Locust master was still running {grace_secs} s after the end of the test and \
         was killed; its output ends with:\n{stderr_tail}"
    )]
    Hung {
        grace_secs: u64,
        stderr_tail: String,
    },
    #[error("cannot read Locust's results {path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error(
        "workers {workers:?} sent reports without the loadmatrix probe, so their requests \
         cannot be split into warm-up and measurement; start external workers with \
         `locust --worker -f - --master-host HOST --master-port PORT` so they load the \
         locustfile and the probe from the master"
    )]
    ProbeMissing { workers: Vec<String> },
    #[error(
        "the locustfile {locustfile} defines the load shape `{class}` (a LoadTestShape), which \
         makes Locust ignore the users, spawn rate and run time loadmatrix sets for each cell; \
         remove the shape class from the locustfile (or import the user classes into a \
         locustfile without it) and set users and duration in the plan's matrix instead"
    )]
    LoadShape { locustfile: PathBuf, class: String },
    #[error("cancelled before the measured window started")]
    Cancelled,
}

const LOCUST_DEFAULT_MASTER_PORT: u16 = 5557;
const PROBE_FILE: &str = "loadmatrix_locust_probe.py";
const PROBE_SOURCE: &str = include_str!("locust/probe.py");
const POLL: Duration = Duration::from_millis(100);
/// Python and Locust start in about a second; a busy machine takes longer.
const STARTUP_GRACE: Duration = Duration::from_secs(15);
/// Locust's own shutdown takes about a second after the run time.
const FINISH_GRACE: Duration = Duration::from_secs(30);
/// After a cancel: the master alone (it tells workers to send their last
/// report and quit), then SIGTERM to everyone, then SIGKILL.
const CANCEL_TERM_ALL: Duration = Duration::from_secs(1);
const CANCEL_KILL: Duration = Duration::from_secs(2);
const TAIL_LINES: usize = 25;
const MAX_USERS: u64 = crate::base::limits::MAX_LOCUST_USERS;
const MAX_WORKERS: usize = crate::base::limits::MAX_LOCUST_WORKERS;

fn invalid(msg: impl Into<String>) -> LocustError {
    LocustError::InvalidSpec(msg.into())
}

fn validate(spec: &LocustSpec) -> Result<(), LocustError> {
    if spec.users == 0 || spec.users > MAX_USERS {
        return Err(invalid(format!("users must be in 1..={MAX_USERS}")));
    }
    if !spec.spawn_rate.is_finite() || spec.spawn_rate < 0.0 {
        return Err(invalid(
            "spawn_rate must be a finite number >= 0 (0 = all at once)",
        ));
    }
    if spec.workers == 0 || spec.workers > MAX_WORKERS {
        return Err(invalid(format!("workers must be in 1..={MAX_WORKERS}")));
    }
    if spec.duration.is_zero() {
        return Err(invalid("duration must be > 0"));
    }
    if spec.expect_workers_timeout.is_zero() {
        return Err(invalid("expect_workers_timeout must be > 0"));
    }
    if spec.host.trim().is_empty() {
        return Err(invalid(
            "host must be a base URL such as http://127.0.0.1:8080",
        ));
    }
    if spec.master_bind.trim().is_empty() {
        return Err(invalid("master_bind must not be empty"));
    }
    if !spec.locustfile.is_file() {
        return Err(invalid(format!(
            "locustfile {} does not exist or is not a file",
            spec.locustfile.display()
        )));
    }
    if spec.locustfile.to_string_lossy().contains(',') {
        return Err(invalid(format!(
            "locustfile {}: Locust's -f splits on ',', so the path may not contain one",
            spec.locustfile.display()
        )));
    }
    Ok(())
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map_or_else(|_| p.to_path_buf(), |d| d.join(p))
    }
}

/// Files of one run inside `work_dir`.
struct Files {
    dir: PathBuf,
    probe: PathBuf,
    out: PathBuf,
    progress: PathBuf,
}

fn prepare(spec: &LocustSpec) -> Result<Files, LocustError> {
    let dir = absolute(&spec.work_dir);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |error| LocustError::Io { path, error }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    let files = Files {
        probe: dir.join(PROBE_FILE),
        out: dir.join("loadmatrix_probe.json"),
        progress: dir.join("loadmatrix_progress.jsonl"),
        dir,
    };
    fs::write(&files.probe, PROBE_SOURCE).map_err(io(&files.probe))?;
    let locust_json = files.dir.join("locust.json");
    for stale in [&files.out, &files.progress, &locust_json] {
        match fs::remove_file(stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(stale)(e)),
            _ => {}
        }
    }
    Ok(files)
}

fn is_wildcard(host: &str) -> bool {
    matches!(host, "*" | "0.0.0.0" | "::" | "[::]" | "")
}

fn pick_port(bind: &str) -> Result<u16, LocustError> {
    let host = if is_wildcard(bind) { "0.0.0.0" } else { bind };
    let listener = TcpListener::bind((host, 0)).map_err(|e| {
        invalid(format!(
            "cannot find a free port on master_bind {bind:?}: {e}"
        ))
    })?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| invalid(format!("cannot find a free port on {bind:?}: {e}")))
}

/// Reads the progress file as it grows.
struct ProgressReader {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl ProgressReader {
    fn read(&mut self) -> Vec<ProgressLine> {
        let Ok(mut f) = fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        self.partial.extend_from_slice(&buf);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

fn tail(path: &Path) -> String {
    crate::base::process::tail(path, TAIL_LINES)
}

fn status_text(s: Option<ExitStatus>) -> String {
    s.map_or_else(|| "an unknown status".into(), |s| s.to_string())
}

enum Outcome {
    /// The master exited on its own after the test started.
    Finished,
    Cancelled,
}

/// Runs one Locust test and blocks until it ends, or about a second after
/// `cancel` is set. `progress` is called about once a second, on the calling
/// thread, from the master's view (worker reports arrive every 3 s, so counts
/// move in steps).
///
/// Every process started here is in its own process group with
/// PR_SET_PDEATHSIG tied to the calling thread, and is killed on every exit
/// path. On cancel the master gets SIGTERM (it collects the workers' last
/// reports and stops them), everything still running gets SIGTERM after 1 s
/// and SIGKILL after 2 s; the result is `CellStats` with `cancelled = true`
/// when the measured window had started, else [`LocustError::Cancelled`].
pub fn run_locust(
    spec: &LocustSpec,
    cancel: CancelToken,
    progress: &dyn Fn(ProgressTick),
) -> Result<CellStats, LocustError> {
    validate(spec)?;
    let path = spec
        .path
        .clone()
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let launcher: Launcher =
        process::find_launcher(&path).ok_or_else(|| LocustError::NotInstalled {
            path: path.to_string_lossy().into_owned(),
        })?;
    let files = prepare(spec)?;
    let port = match spec.master_port {
        // Where `locust --worker` connects unless told otherwise.
        0 if spec.external_workers => LOCUST_DEFAULT_MASTER_PORT,
        0 => pick_port(&spec.master_bind)?,
        p => p,
    };
    if cancel.is_cancelled() {
        return Err(LocustError::Cancelled);
    }
    let total = spec.warmup.saturating_add(spec.duration);
    // Locust's --run-time takes whole seconds.
    let run_secs = total.as_secs_f64().ceil().max(1.0) as u64;
    let mut warnings = Vec::new();
    if spec.insecure && spec.host.starts_with("https://") {
        warnings.push(super::INSECURE_TLS.into());
    }
    if total.subsec_nanos() != 0 {
        warnings.push(format!(
            "Locust runs whole seconds: warm-up + duration rounded up to {run_secs} s"
        ));
    }
    if spec.spawn_rate > 0.0 {
        let ramp = (spec.users - 1) as f64 / spec.spawn_rate;
        if ramp > spec.warmup.as_secs_f64() {
            warnings.push(format!(
                "the ramp ({ramp:.1} s) is longer than the warm-up; \
                 the measured window includes ramp-up"
            ));
        }
    }
    let cwd = absolute(&spec.locustfile)
        .parent()
        .map_or_else(|| files.dir.clone(), Path::to_path_buf);
    let mut common_env: Vec<(&str, OsString)> =
        vec![("PATH", path.clone()), ("PYTHONUNBUFFERED", "1".into())];
    if let Some(ca) = &spec.ca_bundle {
        let ca = absolute(ca).into_os_string();
        common_env.push(("REQUESTS_CA_BUNDLE", ca.clone()));
        common_env.push(("SSL_CERT_FILE", ca.clone()));
        common_env.push(("LOADMATRIX_CA_BUNDLE", ca));
    }
    if spec.insecure {
        common_env.push(("LOADMATRIX_TLS_INSECURE", "1".into()));
    }
    let mut master_env: Vec<(&str, OsString)> = common_env.to_vec();
    master_env.push(("LOADMATRIX_PROBE_OUT", files.out.clone().into_os_string()));
    master_env.push((
        "LOADMATRIX_PROBE_PROGRESS",
        files.progress.clone().into_os_string(),
    ));
    master_env.push((
        "LOADMATRIX_PROBE_WARMUP",
        spec.warmup.as_secs_f64().to_string().into(),
    ));
    if !spec.user_classes.is_empty() {
        // Passed this way because `--tags` and user `args` may take
        // positional words that follow them.
        master_env.push(("LOCUST_USER_CLASSES", spec.user_classes.join(" ").into()));
    }

    let mut procs = Procs::default();
    procs.redactor = spec.redactor.clone();
    let master_log = files.dir.join("locust-master.log");
    let _ = fs::remove_file(&master_log);
    procs
        .spawn(
            "master",
            &launcher,
            &master_args(spec, &files, port, run_secs),
            &master_env,
            &cwd,
            &master_log,
        )
        .map_err(|error| LocustError::Spawn {
            process: "master".into(),
            error,
        })?;
    if !spec.external_workers {
        for i in 0..spec.workers {
            let name = format!("worker {}", i + 1);
            let log = files.dir.join(format!("locust-worker-{}.log", i + 1));
            let _ = fs::remove_file(&log);
            procs
                .spawn(
                    &name,
                    &launcher,
                    &worker_args(spec, &files, port),
                    &common_env,
                    &cwd,
                    &log,
                )
                .map_err(|error| LocustError::Spawn {
                    process: name.clone(),
                    error,
                })?;
        }
    }

    let mut reader = ProgressReader {
        path: files.progress.clone(),
        offset: 0,
        partial: Vec::new(),
    };
    let spawned_at = Instant::now();
    let mut connected = 0u64;
    let mut started_at: Option<Instant> = None;
    let mut cancelled_at: Option<Instant> = None;
    let mut termed_all = false;
    // Workers that exited while the window ran, and when the master wrote
    // its result without exiting yet.
    let mut lost: Vec<String> = Vec::new();
    let mut result_seen_at: Option<Instant> = None;
    let outcome = loop {
        for line in reader.read() {
            match line {
                ProgressLine::Waiting { connected: c } => connected = c,
                ProgressLine::Started { connected: c } => {
                    connected = c;
                    started_at.get_or_insert_with(Instant::now);
                }
                ProgressLine::Shape { class } => {
                    procs.stop(Duration::ZERO, Duration::from_secs(1));
                    let locustfile = spec.locustfile.clone();
                    return Err(LocustError::LoadShape { locustfile, class });
                }
                ProgressLine::Tick {
                    phase,
                    elapsed,
                    requests,
                    failures,
                    users,
                    rps,
                    p50,
                    p95,
                    window,
                } => progress(ProgressTick {
                    elapsed: Duration::try_from_secs_f64(elapsed).unwrap_or_default(),
                    phase: if phase == "warmup" {
                        Phase::Warmup
                    } else {
                        Phase::Measure
                    },
                    rps,
                    p50_ms: p50,
                    p95_ms: p95,
                    requests,
                    failures,
                    users,
                    dropped: 0,
                    window: window
                        .map(|w| crate::engine::WindowSoFar {
                            secs: w.secs,
                            requests: w.requests,
                            failures: w.failures,
                            last: w.last,
                            by_name: Vec::new(),
                        })
                        .unwrap_or_default(),
                }),
            }
        }
        let now = Instant::now();
        if cancelled_at.is_none() && cancel.is_cancelled() {
            cancelled_at = Some(now);
            if let Some(m) = procs.list.first_mut() {
                m.signal(libc::SIGTERM);
            }
        }
        if let Some(at) = cancelled_at {
            let waited = now.duration_since(at);
            if procs.all_exited() {
                break Outcome::Cancelled;
            }
            if waited >= CANCEL_KILL {
                procs.stop(Duration::ZERO, Duration::ZERO);
                break Outcome::Cancelled;
            }
            let master_gone = procs.list.first_mut().is_none_or(|m| m.poll().is_some());
            if !termed_all && (waited >= CANCEL_TERM_ALL || master_gone) {
                // The master has had its chance to collect the last reports.
                procs.signal(libc::SIGTERM);
                termed_all = true;
            }
        } else {
            let master_status = procs.list.first_mut().and_then(|m| m.poll());
            if let Some(status) = master_status {
                if started_at.is_none() {
                    reader.read().into_iter().for_each(|l| {
                        if let ProgressLine::Waiting { connected: c } = l {
                            connected = c;
                        }
                    });
                    return Err(start_error(
                        spec,
                        &master_log,
                        status,
                        connected,
                        spawned_at,
                    ));
                }
                break Outcome::Finished;
            }
            match started_at {
                None => {
                    for w in procs.list.iter_mut().skip(1) {
                        if let Some(status) = w.poll() {
                            let (name, log) = (w.name.clone(), w.log.clone());
                            return Err(process_failed(spec, &name, &log, status.to_string()));
                        }
                    }
                    if now.duration_since(spawned_at) > spec.expect_workers_timeout + STARTUP_GRACE
                    {
                        return Err(LocustError::WorkersMissing {
                            expected: spec.workers,
                            connected,
                            waited_secs: now.duration_since(spawned_at).as_secs(),
                            stderr_tail: tail(&master_log),
                        });
                    }
                }
                Some(at) => {
                    let ran = now.duration_since(at);
                    lost.extend(procs.lost_workers(ran, run_secs));
                    if let Some(w) = procs.outlived_result(&files.out, &mut result_seen_at) {
                        warnings.push(w);
                        break Outcome::Finished;
                    }
                    if ran > Duration::from_secs(run_secs) + FINISH_GRACE {
                        procs.stop(Duration::ZERO, Duration::from_secs(1));
                        return Err(LocustError::Hung {
                            grace_secs: FINISH_GRACE.as_secs(),
                            stderr_tail: tail(&master_log),
                        });
                    }
                }
            }
        }
        thread::sleep(POLL);
    };

    // Workers quit when the master does; give them a moment, then make sure.
    procs.stop(Duration::from_secs(2), Duration::from_secs(1));
    let logs: Vec<PathBuf> = procs.list.iter().map(|p| p.log.clone()).collect();
    let master_status = procs.list.first_mut().and_then(|m| m.poll());
    drop(procs);
    let cancelled = matches!(outcome, Outcome::Cancelled);

    let out = match fs::read(&files.out) {
        Ok(bytes) => {
            serde_json::from_slice::<ProbeOutput>(&bytes).map_err(|e| LocustError::Output {
                path: files.out.clone(),
                reason: e.to_string(),
            })?
        }
        Err(_) if cancelled => return Err(LocustError::Cancelled),
        Err(_) => {
            return Err(LocustError::MasterExited {
                status: status_text(master_status),
                stderr_tail: tail(&master_log),
            });
        }
    };
    if cancelled && !out.measure_started {
        return Err(LocustError::Cancelled);
    }
    if !out.unprobed.is_empty() {
        return Err(LocustError::ProbeMissing {
            workers: out.unprobed.clone(),
        });
    }
    let rows = if cancelled {
        out.measured_secs.max(0.0).ceil() as usize
    } else {
        let planned = run_secs as f64 - spec.warmup.as_secs_f64();
        (planned - 1e-9).ceil().max(1.0) as usize
    };
    let mut stats = ingest::cell_stats(
        &out,
        Context {
            rows,
            cancelled,
            client_bound: logs::logged_cpu_warning(&logs),
            warnings,
            locust_stats: ingest::read_locust_json(&files.dir.join("locust.json")),
        },
    );
    logs::degrade_for_lost_workers(&mut stats, lost, logs.first());
    Ok(stats)
}

fn process_failed(spec: &LocustSpec, process: &str, log: &Path, status: String) -> LocustError {
    let stderr_tail = tail(log);
    if stderr_tail.contains("Traceback") || stderr_tail.contains("Could not find") {
        LocustError::Locustfile {
            locustfile: spec.locustfile.clone(),
            process: process.to_string(),
            status,
            stderr_tail,
        }
    } else {
        LocustError::StartFailed {
            process: process.to_string(),
            status,
            stderr_tail,
        }
    }
}

fn start_error(
    spec: &LocustSpec,
    master_log: &Path,
    status: ExitStatus,
    connected: u64,
    spawned_at: Instant,
) -> LocustError {
    let stderr_tail = tail(master_log);
    if stderr_tail.contains("Gave up waiting for workers") {
        return LocustError::WorkersMissing {
            expected: spec.workers,
            connected,
            waited_secs: spawned_at.elapsed().as_secs(),
            stderr_tail,
        };
    }
    process_failed(spec, "master", master_log, status.to_string())
}
