//! Helpers for tests that watch a run: a run in the background with its
//! console lines, plain-socket HTTP against its dashboard.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;

/// `replicas` x `users` on local demo-target replicas of 5 ms: a run to
/// watch, with an SLO and a threshold that always holds. No baseline (a test
/// that wants the `bound` column sets one).
pub fn grid_plan(name: &str, replicas: &str, users: &str, warmup: &str, duration: &str) -> String {
    format!(
        r#"
name = "{name}"
[matrix]
replicas = [{replicas}]
users = [{users}]
[cell]
warmup = "{warmup}"
duration = "{duration}"
[system]
backend = "local"
replicas = "{{{{ matrix.replicas }}}}"
command = ["loadmatrix", "demo-target", "--port", "{{{{ port }}}}", "--service-time", "5ms"]
ready = {{ path = "/health", timeout = "10s" }}
[load]
users = "{{{{ matrix.users }}}}"
[[load.request]]
name = "predict"
path = "/predict"
method = "POST"
body = "{{}}"
[analysis]
slo = {{ p95 = "500ms" }}
baseline = "0s"
[[threshold]]
expr = "p95 < 5s"
"#
    )
}

pub fn write_plan(name: &str, plan: &str) -> (PathBuf, PathBuf) {
    let dir = temp_dir(name);
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    (file, dir.join("results"))
}

/// A run in the background; its stderr lines collected as they come.
pub struct Background {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Background {
    pub fn start(file: &Path, out: &Path, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
            .arg("run")
            .arg(file)
            .arg("--out")
            .arg(out)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Background { child, lines }
    }

    /// The run on a pseudo-terminal (`script` runs it there and copies what
    /// it shows): its console as a user's terminal gets it.
    pub fn start_on_pty(file: &Path, out: &Path, args: &[&str]) -> Self {
        let cmd = format!(
            "{} run {} --out {} {}",
            env!("CARGO_BIN_EXE_loadmatrix"),
            file.display(),
            out.display(),
            args.join(" ")
        );
        let mut child = Command::new("script")
            .args(["-qfec", &cmd, "/dev/null"])
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let mut stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stdout.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                pending.extend_from_slice(&chunk[..n]);
                while let Some(i) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=i).collect();
                    let line = String::from_utf8_lossy(&line).trim_end().to_string();
                    sink.lock().unwrap().push(line);
                }
            }
            if !pending.is_empty() {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&pending).into_owned());
            }
        });
        Background { child, lines }
    }

    pub fn text(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// The dashboard address the run printed.
    pub fn dashboard(&self) -> String {
        let mut addr = None;
        wait_for("the dashboard address", Duration::from_secs(30), || {
            addr = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix("dashboard: http://"))
                .map(|a| a.trim_end_matches('/').to_string());
            addr.is_some()
        });
        addr.unwrap()
    }

    pub fn wait(mut self) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.text());
            }
            if start.elapsed() > Duration::from_secs(180) {
                let _ = self.child.kill();
                panic!("the run did not end: {}", self.text());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `shell` (a command line) run to its end on a pseudo-terminal: `script`
/// runs it there and copies what it shows, as a user's terminal gets it.
pub fn on_pty(shell: &str) -> std::process::Output {
    Command::new("script")
        .args(["-qfec", shell, "/dev/null"])
        .env("TERM", "xterm-256color")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A GET over a plain socket; the body once the server closes (or `limit`).
pub fn get(addr: &str, path: &str, limit: Duration) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    let start = Instant::now();
    let mut chunk = [0u8; 8192];
    while start.elapsed() < limit {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => {}
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text)
}

/// Reads `/events` until `done` holds for what came (or 30 s passed).
pub fn read_events(addr: &str, done: impl Fn(&str) -> bool) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    let start = Instant::now();
    let mut chunk = [0u8; 8192];
    while start.elapsed() < Duration::from_secs(30) && !done(&text) {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(k) => text.push_str(&String::from_utf8_lossy(&chunk[..k])),
            Err(_) => {}
        }
    }
    text
}
