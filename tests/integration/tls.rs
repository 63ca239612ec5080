//! HTTPS and HTTP/2 end to end: `loadmatrix run` against a real nginx with a
//! CA, server and client certificates made here (the demo target serving TLS
//! and h2 is in `tls_demo`).

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, date_time_ymd,
};

/// PEM files of a private CA and what it signed, in `dir`.
pub(crate) struct Pki {
    dir: PathBuf,
}

fn leaf(
    issuer: &CertifiedIssuer<'_, KeyPair>,
    dir: &Path,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
    expired: bool,
) {
    let mut params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![usage];
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    /// ca.pem; server (localhost, 127.0.0.1), client, expired (server,
    /// out of date) signed by it; stranger signed by another CA.
    pub(crate) fn make(dir: &Path) -> Pki {
        let ours = ca("loadmatrix test CA");
        std::fs::write(dir.join("ca.pem"), ours.pem()).unwrap();
        leaf(
            &ours,
            dir,
            "server",
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        );
        leaf(
            &ours,
            dir,
            "client",
            ExtendedKeyUsagePurpose::ClientAuth,
            false,
        );
        leaf(
            &ours,
            dir,
            "expired",
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
        );
        let other = ca("someone else's CA");
        leaf(
            &other,
            dir,
            "stranger",
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        );
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn nginx_binary(test: &str) -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: nginx is required in CI (apt-get install nginx-light)"
        );
        eprintln!("skipping {test}: nginx is not installed");
    }
    found
}

/// nginx on four TLS ports: the private CA's server certificate (HTTP/1.1
/// and HTTP/2), the same demanding a client certificate, an expired one,
/// and one from a CA nobody trusts. Stopped when dropped.
struct Nginx {
    child: Child,
    dir: PathBuf,
    ok: u16,
    mtls: u16,
    expired: u16,
    stranger: u16,
    /// Ends every connection after 20 requests: HTTP/2 with GOAWAY.
    goaway: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn start(bin: &Path, pki: &Pki, dir: &Path) -> Nginx {
        let (ok, mtls, expired, stranger) = (free_port(), free_port(), free_port(), free_port());
        let goaway = free_port();
        let d = dir.display();
        let server = |port: u16, cert: &str, extra: &str| {
            format!(
                "server {{ listen 127.0.0.1:{port} ssl http2; ssl_certificate {c}; \
                 ssl_certificate_key {k}; {extra} location / {{ return 200 \"ok\\n\"; }} \
                 location /reset {{ return 444; }} }}\n",
                c = pki.file(&format!("{cert}.pem")),
                k = pki.file(&format!("{cert}.key")),
            )
        };
        let conf = format!(
            "worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\ndaemon off;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n\
             log_format proto '$server_port $server_protocol $status $ssl_session_reused';\n\
             access_log {d}/access.log proto;\n\
             keepalive_requests 10000000;\n\
             client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
             {}{}{}{}{}}}\n",
            server(ok, "server", ""),
            server(
                mtls,
                "server",
                &format!(
                    "ssl_client_certificate {}; ssl_verify_client on;",
                    pki.file("ca.pem")
                )
            ),
            server(expired, "expired", ""),
            server(stranger, "stranger", ""),
            server(goaway, "server", "keepalive_requests 20;"),
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        for port in [ok, mtls, expired, stranger, goaway] {
            wait_for("nginx", Duration::from_secs(10), || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
        }
        Nginx {
            child,
            dir: dir.to_path_buf(),
            ok,
            mtls,
            expired,
            stranger,
            goaway,
        }
    }

    /// Access log lines of requests to `port`.
    fn log(&self, port: u16) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(&format!("{port} ")))
            .map(str::to_string)
            .collect()
    }
}

/// A plan against `base_url` with `[tls]` written as `tls`; `extra` goes into [load].
fn nginx_plan(name: &str, base_url: &str, tls: &str, extra: &str) -> String {
    format!(
        r#"
name = "{name}"
[cell]
duration = "2s"
warmup = "300ms"
[tls]
{tls}
[load]
base_url = "{base_url}"
users = 4
timeout = "5s"
{extra}
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
"#
    )
}

fn stats_json(run: &Run) -> serde_json::Value {
    let text = std::fs::read_to_string(run.dir.join("cells/default/stats.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn console(run: &Run) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&run.output.stdout),
        stderr(&run.output)
    )
}

#[test]
fn https_with_a_private_ca_over_http1_and_http2_with_resumed_sessions() {
    let Some(bin) = nginx_binary("https_with_a_private_ca") else {
        return;
    };
    let dir = temp_dir("tls-nginx-pki");
    let pki = Pki::make(&dir);
    let nginx = Nginx::start(&bin, &pki, &dir);
    let url = format!("https://localhost:{}", nginx.ok);
    let plan = format!(
        r#"
name = "tls-nginx"
[matrix]
case = ["h1", "h2", "close", "goaway"]
[cell]
duration = "2s"
warmup = "300ms"
[system]
ready = {{ url = "{url}/", timeout = "10s" }}
[tls]
ca = "ca.pem"
[load]
base_url = "{{{{ 'https://localhost:{goaway}' if matrix.case == 'goaway' else '{url}' }}}}"
users = 4
http = "{{{{ '2' if matrix.case in ['h2', 'goaway'] else '1.1' }}}}"
[[load.request]]
path = "/"
headers = {{ connection = "{{{{ 'close' if matrix.case == 'close' else 'keep-alive' }}}}" }}
[[check]]
name = "https-check"
http = {{ url = "{url}/" }}
[analysis]
baseline = "0s"
"#,
        goaway = nginx.goaway,
    );
    std::fs::write(dir.join("plan.toml"), &plan).unwrap();
    let out = dir.join("results");
    let output = loadmatrix()
        .args(["run", "plan.toml", "--out"])
        .arg(&out)
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let rows = summary(&only_run(&out, "tls-nginx"));
    let row = |case: &str| rows.iter().find(|r| r["case"] == case).unwrap();
    for case in ["h1", "h2", "close", "goaway"] {
        let r = row(case);
        assert_eq!(r["status"], "complete", "{r:?}");
        assert_eq!(num(r, "failures"), 0.0, "{r:?}");
        assert!(num(r, "requests") > 50.0, "{r:?}");
        assert!(num(r, "tls_p95") > 0.0, "{r:?}");
        assert!(num(r, "connect_p95") > 0.0, "{r:?}");
    }
    // Keep-alive: one connection per user; HTTP/2 too by default.
    assert_eq!(num(row("h1"), "connections"), 4.0);
    assert_eq!(num(row("h2"), "connections"), 4.0);
    // Connection: close opens one per request: visible as such.
    let close = row("close");
    assert!(
        num(close, "connections") >= num(close, "requests"),
        "{close:?}"
    );
    // nginx ends each HTTP/2 connection with GOAWAY after 20 requests: the
    // engine opens another and no request fails.
    let goaway = row("goaway");
    assert!(
        num(goaway, "connections") >= num(goaway, "requests") / 20.0,
        "{goaway:?}"
    );
    let log = nginx.log(nginx.ok);
    let h2 = log.iter().filter(|l| l.contains(" HTTP/2.0 200")).count();
    let h1 = log.iter().filter(|l| l.contains(" HTTP/1.1 200")).count();
    assert!(
        h2 as f64 >= num(row("h2"), "requests"),
        "{h2} HTTP/2.0 lines"
    );
    assert!(
        h1 as f64 >= num(row("h1"), "requests"),
        "{h1} HTTP/1.1 lines"
    );
    // Reconnects resume the user's earlier session (nginx logs "r").
    let resumed = log.iter().filter(|l| l.ends_with(" r")).count();
    assert!(
        resumed as f64 >= num(close, "requests") * 0.9,
        "{resumed} resumed sessions of {} connections",
        num(close, "connections")
    );
}

#[test]
fn mutual_tls_is_accepted_with_the_client_certificate_and_refused_without() {
    let Some(bin) = nginx_binary("mutual_tls") else {
        return;
    };
    let dir = temp_dir("tls-mtls-pki");
    let pki = Pki::make(&dir);
    let nginx = Nginx::start(&bin, &pki, &dir);
    let url = format!("https://127.0.0.1:{}", nginx.mtls);
    let with = run_plan(
        "tls-mtls-with",
        &nginx_plan(
            "tls-mtls-with",
            &url,
            &format!(
                "ca = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"",
                pki.file("ca.pem"),
                pki.file("client.pem"),
                pki.file("client.key")
            ),
            "",
        ),
        &[],
    );
    assert_eq!(
        with.output.status.code(),
        Some(0),
        "{}",
        stderr(&with.output)
    );
    let row = &summary(&with.dir)[0];
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    assert!(num(row, "requests") > 50.0, "{row:?}");
    let without = run_plan(
        "tls-mtls-without",
        &nginx_plan(
            "tls-mtls-without",
            &url,
            &format!("ca = \"{}\"", pki.file("ca.pem")),
            "",
        ),
        &[],
    );
    let row = &summary(&without.dir)[0];
    assert!(num(row, "requests") > 0.0, "{row:?}");
    assert_eq!(num(row, "failures"), num(row, "requests"), "{row:?}");
    // nginx answers 400 "No required SSL certificate was sent".
    let kinds = &stats_json(&without)["stats"]["total"]["failures_by_kind"];
    assert_eq!(
        kinds["status"].as_f64(),
        Some(num(row, "requests")),
        "{kinds}"
    );
    assert!(nginx.log(nginx.mtls).iter().any(|l| l.contains(" 400 ")));
}

#[test]
fn an_untrusted_certificate_fails_the_cell_as_tls_with_the_reason() {
    let Some(bin) = nginx_binary("an_untrusted_certificate") else {
        return;
    };
    let dir = temp_dir("tls-untrusted-pki");
    let pki = Pki::make(&dir);
    let nginx = Nginx::start(&bin, &pki, &dir);
    let url = format!("https://localhost:{}", nginx.stranger);
    let tls = format!("ca = \"{}\"", pki.file("ca.pem"));
    let run = run_plan(
        "tls-untrusted",
        &nginx_plan("tls-untrusted", &url, &tls, ""),
        &[],
    );
    let row = &summary(&run.dir)[0];
    assert!(num(row, "requests") > 0.0, "{row:?}");
    assert_eq!(num(row, "failures"), num(row, "requests"), "{row:?}");
    let stats = stats_json(&run);
    assert_eq!(
        stats["stats"]["total"]["failures_by_kind"]["tls"].as_f64(),
        Some(num(row, "requests")),
        "{stats}"
    );
    let reason = "certificate signed by an unknown issuer";
    assert!(console(&run).contains(reason), "{}", console(&run));
    let events =
        std::fs::read_to_string(run.dir.join("cells/default/events.log")).unwrap_or_default();
    let report = std::fs::read_to_string(run.dir.join("report.md")).unwrap();
    assert!(
        events.contains(reason) || report.contains(reason),
        "{report}"
    );
    assert!(report.contains(reason), "{report}");

    // Readiness over https fails at once on the certificate, well inside
    // its 60 s timeout, naming why.
    let plan = nginx_plan("tls-untrusted-ready", &url, &tls, "").replace(
        "[tls]",
        &format!("[system]\nready = {{ url = \"{url}/\", timeout = \"60s\" }}\n[tls]"),
    );
    let started = Instant::now();
    let ready = run_plan("tls-untrusted-ready", &plan, &[]);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_ne!(ready.output.status.code(), Some(0));
    assert!(console(&ready).contains(reason), "{}", console(&ready));
}

#[test]
fn an_expired_certificate_is_named_expired() {
    let Some(bin) = nginx_binary("an_expired_certificate") else {
        return;
    };
    let dir = temp_dir("tls-expired-pki");
    let pki = Pki::make(&dir);
    let nginx = Nginx::start(&bin, &pki, &dir);
    let url = format!("https://localhost:{}", nginx.expired);
    let run = run_plan(
        "tls-expired",
        &nginx_plan(
            "tls-expired",
            &url,
            &format!("ca = \"{}\"", pki.file("ca.pem")),
            "",
        ),
        &[],
    );
    let row = &summary(&run.dir)[0];
    assert_eq!(num(row, "failures"), num(row, "requests"), "{row:?}");
    assert!(
        console(&run).contains("tls: certificate expired"),
        "{}",
        console(&run)
    );
    // With verification off the same server answers, and the run says so.
    let insecure = run_plan(
        "tls-insecure",
        &nginx_plan("tls-insecure", &url, "insecure = true", ""),
        &[],
    );
    let row = &summary(&insecure.dir)[0];
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    assert!(
        console(&insecure).contains("NOT verified"),
        "{}",
        console(&insecure)
    );
    let report = std::fs::read_to_string(insecure.dir.join("report.md")).unwrap();
    assert!(report.contains("NOT verified"), "{report}");
}

#[test]
fn validate_reads_every_tls_file_and_names_its_line() {
    let dir = temp_dir("tls-validate");
    std::fs::write(dir.join("junk.pem"), "not PEM at all").unwrap();
    let plan = r#"name = "tls-validate"
[tls]
ca = "missing.pem"
[load]
base_url = "https://127.0.0.1:8443"
users = 2
connections = 2
[[load.request]]
path = "/"
[analysis]
baseline = "0s"
"#;
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let validate = |dir: &Path| {
        loadmatrix()
            .arg("validate")
            .arg(dir.join("plan.toml"))
            .output()
            .unwrap()
    };
    let o = validate(&dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("plan.toml:3:6"), "{err}");
    assert!(err.contains("missing.pem` does not exist"), "{err}");
    // `connections` multiplexes HTTP/2 only.
    assert!(err.contains("plan.toml:7:15"), "{err}");
    assert!(err.contains("set `http = \"2\"`"), "{err}");
    // A file that is there but holds no certificate.
    let plan = plan
        .replace("missing.pem", "junk.pem")
        .replace("connections = 2", "http = \"2\"\nconnections = 2");
    std::fs::write(dir.join("plan.toml"), plan).unwrap();
    let o = validate(&dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("plan.toml:3:6"), "{err}");
    assert!(err.contains("holds no PEM certificate"), "{err}");
    assert!(!err.contains("connections"), "{err}");
}

#[test]
fn server_name_is_the_name_sent_and_verified() {
    let Some(bin) = nginx_binary("server_name_is_the_name_sent_and_verified") else {
        return;
    };
    let dir = temp_dir("tls-server-name-pki");
    let pki = Pki::make(&dir);
    let nginx = Nginx::start(&bin, &pki, &dir);
    // The certificate names localhost and 127.0.0.1: the URL's address
    // alone would pass, so a failure can only come from `server_name`.
    let url = format!("https://127.0.0.1:{}", nginx.ok);
    let ca = format!("ca = \"{}\"", pki.file("ca.pem"));
    let wrong = run_plan(
        "tls-name-wrong",
        &nginx_plan(
            "tls-name-wrong",
            &url,
            &format!("{ca}\nserver_name = \"api.internal\""),
            "",
        ),
        &[],
    );
    let row = &summary(&wrong.dir)[0];
    assert_eq!(num(row, "failures"), num(row, "requests"), "{row:?}");
    assert!(
        console(&wrong).contains("tls: name mismatch"),
        "{}",
        console(&wrong)
    );
    let right = run_plan(
        "tls-name-right",
        &nginx_plan(
            "tls-name-right",
            &url,
            &format!("{ca}\nserver_name = \"localhost\""),
            "",
        ),
        &[],
    );
    let row = &summary(&right.dir)[0];
    assert_eq!(num(row, "failures"), 0.0, "{row:?}");
    assert!(num(row, "requests") > 50.0, "{row:?}");
}

#[test]
fn a_reset_stream_is_its_own_failure_kind() {
    let Some(bin) = nginx_binary("a_reset_stream_is_its_own_failure_kind") else {
        return;
    };
    let dir = temp_dir("tls-reset-pki");
    let pki = Pki::make(&dir);
    let nginx = Nginx::start(&bin, &pki, &dir);
    // nginx's `return 444` over HTTP/2 resets the stream.
    let plan = nginx_plan(
        "tls-reset",
        &format!("https://localhost:{}", nginx.ok),
        &format!("ca = \"{}\"", pki.file("ca.pem")),
        "http = \"2\"",
    )
    .replace("path = \"/\"", "path = \"/reset\"");
    let run = run_plan("tls-reset", &plan, &[]);
    let row = &summary(&run.dir)[0];
    assert!(num(row, "requests") > 0.0, "{row:?}");
    let kinds = &stats_json(&run)["stats"]["total"]["failures_by_kind"];
    assert_eq!(
        kinds["reset"].as_f64(),
        Some(num(row, "requests")),
        "{kinds}"
    );
}
