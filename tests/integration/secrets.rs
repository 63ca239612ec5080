//! A secret from `env` never reaches the disk or the console, not even for a
//! moment: the results folder is searched for it (raw and encoded) while the
//! run is live and again after loadmatrix is SIGKILLed mid-run; `plan` and
//! `validate` output and a finished run's re-rendered report are searched
//! too, and that report needs no secret in the environment.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{demo_pids, kill, only_run, stderr, temp_dir, wait_for};

/// Characters URL-encoding changes (space, `/`, `+`) and a JSON escape (`/`).
const SENTINEL: &str = "Se cr/et+k3y-7c1d";
/// A second secret, used to build a report's file name.
const FILE_TAG: &str = "tag-5e4f3a";

/// Every encoded form loadmatrix promises to mask, computed here
/// independently of its own encoder.
fn forms(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    for keep_slash in [false, true] {
        for plus in [false, true] {
            for upper in [false, true] {
                let mut s = String::new();
                for b in secret.bytes() {
                    match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                            s.push(b as char)
                        }
                        b'/' if keep_slash => s.push('/'),
                        b' ' if plus => s.push('+'),
                        _ if upper => s.push_str(&format!("%{b:02X}")),
                        _ => s.push_str(&format!("%{b:02x}")),
                    }
                }
                out.push(s);
            }
        }
    }
    out.push(secret.replace('/', "\\/"));
    const STD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in secret.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(STD[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let url = b64.replace('+', "-").replace('/', "_");
    out.push(b64.trim_end_matches('=').to_string());
    out.push(url.trim_end_matches('=').to_string());
    out.push(b64);
    out.push(url);
    out.sort();
    out.dedup();
    out
}

/// Every file under `dir` that holds a form of a secret, with the form.
fn leaks(dir: &Path, forms: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            for f in forms {
                if name.contains(f.as_str()) {
                    found.push(format!("file name {} holds {f:?}", p.display()));
                }
            }
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            // A temp file may be renamed away between listing and reading.
            let Ok(bytes) = std::fs::read(&p) else {
                continue;
            };
            let text = String::from_utf8_lossy(&bytes);
            for f in forms {
                if text.contains(f.as_str()) {
                    found.push(format!("{} holds {f:?}", p.display()));
                }
            }
        }
    }
    found
}

fn all_forms() -> Vec<String> {
    let mut f = forms(SENTINEL);
    f.extend(forms(FILE_TAG));
    f
}

fn write_plan(dir: &Path, marker: &str) -> std::path::PathBuf {
    // The replica prints the secret through its template, and its encoded
    // forms from the environment (`LM_FORMS` is no template variable, so only
    // the encodings of the secret can mask it).
    let plan = r#"
name = "sentinel"
description = "token {{ env.LM_SENTINEL }}"
[matrix]
users = [1, 2]
[cell]
duration = "3s"
[system]
backend = "local"
command = ["bash", "-c", "echo start {{ env.LM_SENTINEL }} end; printf '%s\\n' \"$LM_FORMS\"; exec BIN demo-target --port {{ port }} --seed MARKER --service-time 5ms"]
[load]
users = "{{ matrix.users }}"
[[load.request]]
method = "POST"
path = "/predict"
headers = { Authorization = "Bearer {{ env.LM_SENTINEL }}" }
body = '{"inputs": [1]}'
[analysis]
baseline = "0s"
[[report]]
template = "custom.md.j2"
output = "custom-{{ env.LM_FILE_TAG }}.md"
"#
    .replace("BIN", env!("CARGO_BIN_EXE_loadmatrix"))
    .replace("MARKER", marker);
    std::fs::write(
        dir.join("custom.md.j2"),
        "# {{ plan.name }}\n{% for c in cells %}- {{ c.id }}\n{% endfor %}",
    )
    .unwrap();
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    file
}

fn loadmatrix() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_loadmatrix"));
    c.env("LM_SENTINEL", SENTINEL)
        .env("LM_FILE_TAG", FILE_TAG)
        .env(
            "LM_FORMS",
            forms(SENTINEL)
                .into_iter()
                .filter(|f| f != SENTINEL)
                .collect::<Vec<_>>()
                .join("\n"),
        );
    c
}

#[test]
fn no_secret_on_disk_while_live_or_after_sigkill() {
    let marker = format!("{}", 810_000 + std::process::id() % 1000);
    let dir = temp_dir("sentinel");
    let plan = write_plan(&dir, &marker);
    let results = dir.join("results");
    let forms = all_forms();
    let child = loadmatrix()
        .arg("run")
        .arg(&plan)
        .arg("--out")
        .arg(&results)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Live: search the whole folder again and again until the second cell
    // is under load, its replica's output already on disk.
    let start = Instant::now();
    let mut searches = 0;
    let log_seen = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never reached its second cell"
        );
        let found = leaks(&results, &forms);
        assert!(found.is_empty(), "live run leaks: {found:#?}");
        searches += 1;
        let run = std::fs::read_dir(results.join("sentinel"))
            .ok()
            .and_then(|mut d| d.next())
            .map(|e| e.unwrap().path());
        if let Some(run) = run
            && run.join("cells/users1").is_dir()
        {
            let log = std::fs::read_to_string(run.join("logs/replica-0.log")).unwrap_or_default();
            if log.contains("start *** end") {
                break log;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The replica printed every encoded form; each reached the log masked.
    assert!(
        log_seen.matches("***").count() >= self::forms(SENTINEL).len(),
        "{log_seen}"
    );
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let found = leaks(&results, &forms);
        assert!(found.is_empty(), "live run leaks: {found:#?}");
        searches += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(searches > 10, "only {searches} searches while live");
    // SAFETY: SIGKILL to the loadmatrix this test started.
    unsafe { kill(child.id() as i32, 9) };
    let output = child.wait_with_output().unwrap();
    wait_for("the replicas to go", Duration::from_secs(15), || {
        demo_pids(&marker).is_empty()
    });
    let found = leaks(&results, &forms);
    assert!(found.is_empty(), "after SIGKILL: {found:#?}");
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    for f in &forms {
        assert!(
            !console.contains(f.as_str()),
            "console holds {f:?}:\n{console}"
        );
    }

    // The finished first cell is reported again with no secret in the
    // environment: every `env` value renders as the mask.
    let run = only_run(&results, "sentinel");
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("report")
        .arg(&run)
        .env_remove("LM_SENTINEL")
        .env_remove("LM_FILE_TAG")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let custom = std::fs::read_to_string(run.join("custom-***.md")).unwrap();
    assert!(custom.contains("- users1"), "{custom}");
    let found = leaks(&dir, &forms);
    assert!(found.is_empty(), "after report: {found:#?}");
}

#[test]
fn plan_and_validate_mask_rendered_secrets() {
    let dir = temp_dir("sentinel-plan");
    let plan = write_plan(&dir, "1");
    let forms = all_forms();
    let o = loadmatrix().arg("plan").arg(&plan).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    assert!(out.contains("token ***"), "{out}");
    for f in &forms {
        assert!(!out.contains(f.as_str()), "plan output holds {f:?}:\n{out}");
    }

    // A validate error that quotes the rendered value quotes it masked.
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        r#"
name = "bad"
[load]
base_url = "http://127.0.0.1:9"
users = 1
timeout = "{{ env.LM_SENTINEL }}"
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
"#,
    )
    .unwrap();
    let o = loadmatrix().arg("validate").arg(&bad).output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("load.timeout") && err.contains("***"), "{err}");
    for f in &forms {
        assert!(
            !err.contains(f.as_str()),
            "validate output holds {f:?}:\n{err}"
        );
    }
}

/// Locust's processes print to logs in the run folder; what they print
/// passes the same redactor on its way there.
#[test]
fn locust_output_is_masked_before_it_reaches_its_log() {
    if !crate::common::locust_available("locust_output_is_masked_before_it_reaches_its_log") {
        return;
    }
    let dir = temp_dir("sentinel-locust");
    std::fs::write(
        dir.join("locustfile.py"),
        r#"
import os, sys
from locust import HttpUser, constant, task, events

@events.init.add_listener
def leak(environment, **kwargs):
    print("locust says", os.environ["LM_SENTINEL"], flush=True)
    print("and", os.environ["LM_FORMS"].replace("\n", " "), file=sys.stderr, flush=True)

class Predict(HttpUser):
    wait_time = constant(0.05)

    @task
    def predict(self):
        self.client.post("/predict", json={"inputs": [1]}, name="predict")
"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("plan.toml"),
        r#"
name = "sentinel-locust"
description = "token {{ env.LM_SENTINEL }}"
[cell]
duration = "2s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms"]
[load]
engine = "locust"
locustfile = "locustfile.py"
users = 2
workers = 1
[analysis]
baseline = "0s"
"#,
    )
    .unwrap();
    let o = loadmatrix()
        .arg("run")
        .arg(dir.join("plan.toml"))
        .arg("--out")
        .arg(dir.join("results"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let run = only_run(&dir.join("results"), "sentinel-locust");
    let found = leaks(&run, &all_forms());
    assert!(found.is_empty(), "{found:#?}");
    let logs: String = ["master", "worker-1"]
        .iter()
        .map(|p| {
            std::fs::read_to_string(run.join(format!("logs/locust/default/locust-{p}.log")))
                .unwrap_or_default()
        })
        .collect();
    assert!(
        logs.contains("locust says ***") && logs.contains("and *** *** ***"),
        "{logs}"
    );
}

/// A secret with the characters HTML escaping rewrites (`/`, `'`, `<`, `&`).
const HTML_SENTINEL: &str = "s3cr/et'<k&y>-9f2e";

/// The escaped spellings of a secret a report may hold, computed here
/// independently: minijinja's `| e` and auto-escaping (`/` as `&#x2f;`),
/// the XML entities, decimal and upper-case hex entities, and minijinja's
/// HTML-safe `| tojson`.
fn html_forms(secret: &str) -> Vec<String> {
    let escape = |apos: &str, slash: &str, quot: &str| {
        secret
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', quot)
            .replace('\'', apos)
            .replace('/', slash)
    };
    vec![
        secret.to_string(),
        escape("&#x27;", "&#x2f;", "&quot;"),
        escape("&#x27;", "/", "&quot;"),
        escape("&apos;", "/", "&quot;"),
        escape("&#39;", "&#47;", "&#34;"),
        escape("&#x27;", "&#x2F;", "&#x22;"),
        secret
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\'', "\\u0027"),
    ]
}

/// The built-in report.html escapes the description, and a user template
/// following the docs' `| e` advice escapes what it prints: both are masked
/// after escaping, in every spelling.
#[test]
fn html_escaped_secrets_are_masked_in_reports() {
    let dir = temp_dir("sentinel-html");
    let plan = r#"
name = "sentinel-html"
description = "token {{ env.LM_HTML_SENTINEL }}"
[cell]
duration = "1s"
[system]
backend = "local"
command = ["loadmatrix", "demo-target", "--port", "{{ port }}", "--service-time", "5ms"]
[load]
users = 1
[[load.request]]
method = "POST"
path = "/predict"
headers = { Authorization = "Bearer {{ env.LM_HTML_SENTINEL }}" }
body = '{"inputs": [1]}'
[analysis]
baseline = "0s"
[[report]]
template = "escaped.html.j2"
output = "escaped.html"
"#;
    std::fs::write(
        dir.join("escaped.html.j2"),
        "<p>{{ plan.description | e }}</p>\n<script>var d = {{ plan.description | tojson }};</script>\n",
    )
    .unwrap();
    let file = dir.join("plan.toml");
    std::fs::write(&file, plan).unwrap();
    let out = dir.join("results");
    let o = Command::new(env!("CARGO_BIN_EXE_loadmatrix"))
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .env("LM_HTML_SENTINEL", HTML_SENTINEL)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let run = only_run(&out, "sentinel-html");
    let html = std::fs::read_to_string(run.join("escaped.html")).unwrap();
    assert!(html.contains("token ***"), "{html}");
    let report = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(report.contains("token ***"), "{report}");
    let found = leaks(&run, &html_forms(HTML_SENTINEL));
    assert!(found.is_empty(), "{found:#?}");
    for f in html_forms(HTML_SENTINEL) {
        assert!(!err.contains(&f), "stderr holds {f:?}: {err}");
    }
}
