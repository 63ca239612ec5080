//! Fetches every target on an interval during the measured window.

use std::time::{Duration, Instant};

use super::limit::{Budget, Limiter};
use super::{ScrapeSample, expo};

/// Bodies larger than this are cut off: a scrape must not exhaust memory.
pub(crate) const MAX_BODY: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct Target {
    /// How the replica is named in metrics.csv (host:port).
    pub replica: String,
    pub url: String,
}

/// One `[[scrape]]` section's work for one measured window.
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub targets: Vec<Target>,
    pub interval: Duration,
    /// Metric families to keep.
    pub families: Vec<String>,
    /// The plan's `[tls]`, for https targets.
    pub tls: Option<crate::tls::TlsSettings>,
}

#[derive(Debug, Default)]
pub struct Scraped {
    pub samples: Vec<ScrapeSample>,
    /// One line per target that could not be read.
    pub problems: Vec<String>,
}

impl Scraped {
    /// Appends a later stretch of the same window.
    pub fn extend(&mut self, more: Scraped) {
        self.samples.extend(more.samples);
        self.problems.extend(more.problems);
    }
}

/// The host:port of a URL, to name a replica.
pub(crate) fn authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or(rest)
        .to_string()
}

/// Why a scrape read nothing; its text goes into the run's problems.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {status}: redirected to {to}, which is not followed (scrape the final URL)")]
    Redirected { status: u16, to: String },
    #[error("HTTP {0}")]
    Status(u16),
    #[error("body larger than {} MiB", MAX_BODY >> 20)]
    TooLarge,
    #[error("body is not UTF-8 text")]
    NotText,
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<String, FetchError> {
    let mut resp = client.get(url).send().await?;
    if resp.status().is_redirection() {
        // Not followed: a target must not send the scraper to another host.
        let to = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere");
        return Err(FetchError::Redirected {
            status: resp.status().as_u16(),
            to: to.to_string(),
        });
    }
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| FetchError::NotText)
}

/// Scrapes every job's targets from the beginning of the measured window
/// (when `window` says it began) every interval until the window's end or
/// `stop`, then once more, so the window is covered from both ends. Nothing is scraped
/// when the window never began.
pub async fn scrape(
    jobs: Vec<Job>,
    mut window: tokio::sync::watch::Receiver<Option<Instant>>,
    window_len: Duration,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Scraped {
    let mut out = Scraped::default();
    if jobs.iter().all(|j| j.targets.is_empty()) {
        return out;
    }
    tokio::pin!(stop);
    let start = tokio::select! {
        began = window.wait_for(Option::is_some) => match began.ok().and_then(|b| *b) {
            Some(at) => at,
            None => return out,
        },
        _ = &mut stop => return out,
    };
    // The engine may take a while to return after its window (Locust shuts
    // down its processes): the last scrape is at the window's end.
    let end = start + window_len;
    let timeout = jobs
        .iter()
        .map(|j| j.interval)
        .min()
        .unwrap_or(Duration::from_secs(1))
        .clamp(Duration::from_millis(500), Duration::from_secs(5));
    let tls = jobs.iter().find_map(|j| j.tls.as_ref());
    let Ok(client) = crate::tls::TlsSettings::http_client(tls)
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .build()
    else {
        return out;
    };
    // (job, target) -> (attempts, failures, first error)
    let mut failures: Vec<Vec<(u32, u32, Option<String>)>> = jobs
        .iter()
        .map(|j| vec![(0, 0, None); j.targets.len()])
        .collect();
    let mut next: Vec<Instant> = vec![start; jobs.len()];
    let mut stopping = false;
    let mut limiter = Limiter::default();
    let mut budget = Budget::default();
    loop {
        let due = *next.iter().min().unwrap_or(&start);
        if !stopping {
            tokio::select! {
                _ = tokio::time::sleep_until(due.min(end).into()) => {}
                _ = &mut stop => stopping = true,
            }
            stopping |= Instant::now() >= end;
        }
        let now = Instant::now();
        let t = (now.saturating_duration_since(start).as_secs_f64() * 1000.0).round() / 1000.0;
        let mut round = Vec::new();
        for (j, job) in jobs.iter().enumerate() {
            if !stopping && next[j] > now {
                continue;
            }
            let families: Vec<&str> = job.families.iter().map(String::as_str).collect();
            let fetched = futures_util::future::join_all(
                job.targets.iter().map(|target| fetch(&client, &target.url)),
            )
            .await;
            for (k, (target, body)) in job.targets.iter().zip(fetched).enumerate() {
                let f = &mut failures[j][k];
                f.0 += 1;
                match body {
                    Ok(text) => {
                        let lines = expo::parse(&text, &families);
                        drop(text);
                        let (lines, notes) = limiter.limit((j, k), &families, lines);
                        for note in notes {
                            out.problems
                                .push(format!("scrape `{}`: {} {note}", job.name, target.url));
                        }
                        for (metric, labels, value) in lines {
                            round.push(ScrapeSample {
                                t,
                                replica: target.replica.clone(),
                                metric,
                                labels,
                                value,
                            });
                        }
                    }
                    Err(e) => {
                        f.1 += 1;
                        f.2.get_or_insert(e.to_string());
                    }
                }
            }
            while next[j] <= now {
                next[j] += job.interval;
            }
        }
        budget.push(round);
        if stopping {
            break;
        }
    }
    let (samples, note) = budget.finish();
    out.samples = samples;
    if let Some(note) = note {
        out.problems.push(format!("scrape: {note}"));
    }
    for (j, job) in jobs.iter().enumerate() {
        for (k, target) in job.targets.iter().enumerate() {
            let (attempts, failed, first) = &failures[j][k];
            if *failed > 0 {
                out.problems.push(format!(
                    "scrape `{}`: {} unreadable in {failed} of {attempts} attempts: {}",
                    job.name,
                    target.url,
                    first.as_deref().unwrap_or("")
                ));
            }
        }
    }
    out
}
