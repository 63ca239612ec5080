//! Helpers shared by the end-to-end tests: temp folders, running a plan,
//! reading what a run wrote, and finding processes a run started.
#![allow(dead_code)]

pub mod live;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// The loadmatrix binary under test.
pub fn loadmatrix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
}

/// A fresh folder for one test, named after it and this process.
pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Run {
    pub output: Output,
    /// The run folder: results/<plan>/<run-id>.
    pub dir: PathBuf,
}

/// Writes `plan` into a fresh folder and runs it to the end.
pub fn run_plan(name: &str, plan: &str, args: &[&str]) -> Run {
    let dir = temp_dir(name);
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    let out = dir.join("results");
    let output = loadmatrix()
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    let plan_name = plan
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .map(|l| l.trim_end_matches('"').to_string())
        .unwrap();
    let runs = out.join(plan_name);
    let run_dir = std::fs::read_dir(&runs)
        .map(|mut d| d.next().unwrap().unwrap().path())
        .unwrap_or(runs);
    Run {
        output,
        dir: run_dir,
    }
}

/// The only run folder of `plan` under `results`.
pub fn only_run(results: &Path, plan: &str) -> PathBuf {
    std::fs::read_dir(results.join(plan))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap()
}

/// summary.csv as (header -> value) maps.
pub fn summary(dir: &Path) -> Vec<HashMap<String, String>> {
    csv_rows(&dir.join("summary.csv"))
}

/// summary_by_name.csv (one row per cell and request name) as maps.
pub fn summary_by_name(dir: &Path) -> Vec<HashMap<String, String>> {
    csv_rows(&dir.join("summary_by_name.csv"))
}

/// A CSV file without quoted commas as (header -> value) maps.
pub fn csv_rows(file: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// A summary.csv figure as a number, naming the column when it is not one.
pub fn num(row: &HashMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|_| panic!("{col} = {:?} in {row:?}", row[col]))
}

/// `measured` is within `tolerance` (a fraction) of `expected`.
pub fn within(measured: f64, expected: f64, tolerance: f64) -> bool {
    (measured - expected).abs() <= expected * tolerance
}

pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Pids of demo-target processes whose command line holds `marker`, sorted.
pub fn demo_pids(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            // A replica's supervisor names its command too: count the replica itself.
            if cmd.contains("demo-target") && cmd.contains(marker) && !cmd.contains(" supervise ") {
                pids.push(pid);
            }
        }
    }
    pids.sort();
    pids
}

/// Sends `sig` to `child` and waits for it to exit: its exit code and how
/// long it took (killed, and no code, after 20 s).
pub fn stop_with(child: &mut Child, sig: i32) -> (Option<i32>, Duration) {
    // SAFETY: kill(2) on the process this test started.
    unsafe { kill(child.id() as i32, sig) };
    let sent = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status.code(), sent.elapsed());
        }
        if sent.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return (None, sent.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Pids of `loadmatrix` processes (the binary under test) whose arguments
/// include `arg`, e.g. a plan file: a run started through a shell or `script`.
pub fn loadmatrix_pids(arg: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args[0] == env!("CARGO_BIN_EXE_loadmatrix") && args.iter().any(|a| a == arg) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The port a demo-target process was told to listen on (`--port N`).
pub fn demo_port(pid: u32) -> Option<u16> {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmd
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let i = args.iter().position(|a| a == "--port")?;
    args.get(i + 1)?.parse().ok()
}

unsafe extern "C" {
    /// kill(2), for signalling processes the tests started.
    pub fn kill(pid: i32, sig: i32) -> i32;
}

/// Whether Locust can run here. Outside CI a missing Locust skips the test
/// (saying why); under `CI` it fails it, so CI cannot pass by skipping.
pub fn locust_available(test: &str) -> bool {
    let found = Command::new("locust")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
        || Command::new("python3")
            .args(["-c", "import locust"])
            .output()
            .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Locust is not installed (pip install locust)"
        );
        eprintln!("skipping {test}: Locust is not installed (pip install locust)");
    }
    found
}

/// Headless Chromium, if installed. Outside CI a missing browser skips the
/// test (saying why); under `CI` it fails it.
pub fn chromium(test: &str) -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .map(PathBuf::from);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Chromium is not installed (apt-get install chromium)"
        );
        eprintln!("skipping {test}: Chromium is not installed (apt-get install chromium)");
    }
    found
}

/// Runs headless Chromium with `args`, killed after `limit`; its stdout.
pub fn run_chromium(browser: &Path, args: &[&str], limit: Duration) -> String {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let profile = std::env::temp_dir().join(format!("lm-chromium-{}", std::process::id()));
    // Its own process group: the renderers go with it when it is stopped.
    let mut child = Command::new(browser)
        .process_group(0)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signals the process group this function started.
    unsafe { kill(-(child.id() as i32), 9) };
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap()
}

/// Whether ImageMagick's `convert` is installed. Outside CI a missing one
/// skips what needs it (saying why); under `CI` it fails the test.
pub fn imagemagick(test: &str) -> bool {
    let found = std::process::Command::new("convert")
        .arg("-version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but ImageMagick is not installed (apt-get install imagemagick)"
        );
        eprintln!(
            "skipping the screenshot check of {test}: ImageMagick is not installed (apt-get install imagemagick)"
        );
    }
    found
}
