//! The console view of a run: on a terminal a header (`cell i/N`, elapsed,
//! ETA), a live line of the measured window and a result block after each
//! cell; without one (CI logs) one line per finished cell and a heartbeat at
//! most every 10 s, with nothing that only a terminal understands.

use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};

use super::watch::{CellView, Live, Watch, WatchEvent, WatchState};
use crate::engine::Phase;
use crate::results::CellStatus;

const HEARTBEAT: Duration = Duration::from_secs(10);

/// Renders `watch` as `rx` (subscribed before the run starts, so no event
/// is missed) tells of changes, until `close` fires; then shows what is
/// left to show.
pub async fn run(
    watch: Watch,
    mut rx: broadcast::Receiver<WatchEvent>,
    terminal: bool,
    mut close: oneshot::Receiver<()>,
) {
    let mut view = Console::new(terminal);
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => view.on(&watch, &ev),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = &mut close => {
                while let Ok(ev) = rx.try_recv() {
                    view.on(&watch, &ev);
                }
                break;
            }
        }
    }
    view.close();
}

struct Console {
    terminal: bool,
    bar: Option<indicatif::ProgressBar>,
    last_line: Option<Instant>,
}

impl Console {
    fn new(terminal: bool) -> Self {
        Console {
            terminal,
            bar: None,
            last_line: None,
        }
    }

    fn on(&mut self, watch: &Watch, ev: &WatchEvent) {
        match ev {
            // The event's status, not the state's: the state may have moved on.
            WatchEvent::Cell(c, status) => {
                let s = watch.snapshot();
                let Some(cell) = s.cells.get(*c) else { return };
                if *status == CellStatus::Running {
                    self.started(&s, cell);
                } else {
                    self.finished(&s, cell);
                }
            }
            WatchEvent::Tick => self.tick(&watch.snapshot()),
            WatchEvent::Search(line) => self.line(line),
            WatchEvent::Added(_) | WatchEvent::Findings | WatchEvent::Finished => {}
        }
    }

    /// A line of its own, above the live bar when there is one.
    fn line(&mut self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn started(&mut self, s: &WatchState, cell: &CellView) {
        self.last_line = Some(Instant::now());
        if !self.terminal {
            return;
        }
        self.close();
        let bar = indicatif::ProgressBar::new(1000);
        let style = indicatif::ProgressStyle::with_template("{prefix}\n  {bar:20} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("█░");
        bar.set_style(style);
        bar.set_prefix(header(s, cell));
        bar.set_message("starting");
        bar.enable_steady_tick(Duration::from_secs(1));
        self.bar = Some(bar);
    }

    fn tick(&mut self, s: &WatchState) {
        let (Some(live), Some(cell)) = (&s.live, s.current.and_then(|c| s.cells.get(c))) else {
            return;
        };
        if live.index != cell.index {
            return;
        }
        match &self.bar {
            Some(bar) => {
                bar.set_prefix(header(s, cell));
                let pos = live.elapsed_secs / live.total_secs.max(0.001);
                bar.set_position((pos.clamp(0.0, 1.0) * 1000.0) as u64);
                bar.set_message(live_line(live));
            }
            None if !self.terminal && self.last_line.is_none_or(|t| t.elapsed() >= HEARTBEAT) => {
                self.last_line = Some(Instant::now());
                eprintln!("{} · {}", header(s, cell), live_line(live));
            }
            None => {}
        }
    }

    fn finished(&mut self, s: &WatchState, cell: &CellView) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.terminal {
            eprintln!("{}", result_block(s, cell));
        } else {
            eprintln!("{}", result_line(cell));
        }
    }

    fn close(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// `loadmatrix: cell 7/24 [replicas=2 users=32] · 14m elapsed · ETA 37m`;
/// a search probe: `loadmatrix: cell 1/2 [replicas=1 users=16] probe 3 · ...`
pub fn header(s: &WatchState, cell: &CellView) -> String {
    let eta = s
        .eta_seconds
        .map(|e| format!(" · ETA {}", duration(e)))
        .unwrap_or_default();
    format!(
        "loadmatrix: {}{} · {} elapsed{eta}",
        place(s, cell),
        probe_text(cell),
        duration(s.elapsed_seconds),
    )
}

/// `cell 7/24 [replicas=2 users=32]`: the (outer) cell's place among those
/// this invocation measures.
fn place(s: &WatchState, cell: &CellView) -> String {
    match cell.position {
        Some(p) => format!("cell {p}/{} {}", s.selected, label(cell)),
        None => format!("cell {}", label(cell)),
    }
}

fn probe_text(cell: &CellView) -> String {
    cell.probe_no
        .map(|n| format!(" probe {n}"))
        .unwrap_or_default()
}

fn label(cell: &CellView) -> String {
    if cell.matrix.is_empty() {
        return format!("[{}]", cell.id);
    }
    let parts: Vec<String> = cell
        .matrix
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("[{}]", parts.join(" "))
}

/// The measured window so far: nothing of the warm-up is counted.
pub(crate) fn live_line(l: &Live) -> String {
    let measure = (l.total_secs - l.warmup_secs).max(0.0);
    let repeat = if l.repetition > 0 {
        format!(" (repeat {})", l.repetition + 1)
    } else {
        String::new()
    };
    match l.phase {
        Phase::Warmup => format!(
            "warm-up {:.0}/{:.0}s{repeat} · not counted · {} users",
            l.elapsed_secs.min(l.warmup_secs),
            l.warmup_secs,
            l.users
        ),
        Phase::Measure | Phase::Drain => {
            let mut parts = vec![format!(
                "{}{repeat} {}/{:.0}s",
                if l.phase == Phase::Drain {
                    "draining"
                } else {
                    "measuring"
                },
                l.window_secs,
                measure
            )];
            match l.rps {
                Some(r) => parts.push(format!("{r:.1} RPS")),
                None => parts.push("RPS -".into()),
            }
            if l.by_name.len() > 1 {
                for n in &l.by_name {
                    parts.push(format!("{} p95 {}", n.name, ms(n.p95_ms)));
                }
            } else {
                parts.push(format!("p50 {}", opt_ms(l.p50_ms)));
                parts.push(format!("p95 {}", opt_ms(l.p95_ms)));
            }
            parts.push(format!(
                "{} failure{}",
                l.failures,
                if l.failures == 1 { "" } else { "s" }
            ));
            parts.push(format!("{} users", l.users));
            parts.join(" · ")
        }
    }
}

fn metric(cell: &CellView, name: &str) -> Option<f64> {
    cell.summary.as_ref()?.get(name).copied()
}

fn failures(cell: &CellView) -> String {
    let n = metric(cell, "failures").unwrap_or(0.0);
    let kinds: Vec<String> = cell
        .failure_kinds
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    if kinds.is_empty() {
        format!("{n:.0} failures")
    } else {
        format!("{n:.0} failures ({})", kinds.join(", "))
    }
}

fn figures(cell: &CellView) -> Option<String> {
    cell.summary.as_ref()?;
    Some(format!(
        "{:.0} requests · {} RPS · p50 {} · p95 {} · p99 {} · {} · bound {}",
        metric(cell, "requests").unwrap_or(0.0),
        metric(cell, "rps").map_or("-".into(), |v| format!("{v:.1}")),
        opt_ms(metric(cell, "p50")),
        opt_ms(metric(cell, "p95")),
        opt_ms(metric(cell, "p99")),
        failures(cell),
        cell.bound.as_deref().unwrap_or("-"),
    ))
}

fn status_text(cell: &CellView) -> String {
    let status = cell.status.as_str();
    match (cell.status, cell.stopped_after_secs) {
        (CellStatus::Interrupted, Some(at)) => format!(
            "interrupted after {at:.0} s of its {:.0} s measured window",
            cell.window_planned_secs.unwrap_or(0.0)
        ),
        (CellStatus::Interrupted, None) => "interrupted before its measured window".into(),
        _ => status.to_string(),
    }
}

/// After a cell, on a terminal.
pub(crate) fn result_block(s: &WatchState, cell: &CellView) -> String {
    let took = cell
        .wall_secs
        .map(|w| format!(" in {}", duration(w)))
        .unwrap_or_default();
    let mut out = format!(
        "{}{} {}{took}",
        place(s, cell),
        probe_text(cell),
        status_text(cell)
    );
    if cell.summary.is_some() {
        out.push_str(&format!(
            "\n  requests {:.0} · RPS {} · p50 {} · p95 {} · p99 {}\n  {} · bound {}",
            metric(cell, "requests").unwrap_or(0.0),
            metric(cell, "rps").map_or("-".into(), |v| format!("{v:.1}")),
            opt_ms(metric(cell, "p50")),
            opt_ms(metric(cell, "p95")),
            opt_ms(metric(cell, "p99")),
            failures(cell),
            cell.bound.as_deref().unwrap_or("-"),
        ));
    }
    if let Some(m) = &cell.message {
        out.push_str(&format!("\n  {m}"));
    }
    out
}

/// After a cell, without a terminal: one line.
pub(crate) fn result_line(cell: &CellView) -> String {
    let pos = cell.position.map_or_else(String::new, |p| format!("{p} "));
    let mut out = format!(
        "cell {pos}{}{} {}",
        label(cell),
        probe_text(cell),
        status_text(cell)
    );
    if let Some(f) = figures(cell) {
        out.push_str(": ");
        out.push_str(&f);
    }
    if let Some(m) = &cell.message {
        out.push_str(" · ");
        out.push_str(&m.replace(['\r', '\n'], " "));
    }
    out
}

fn opt_ms(v: Option<f64>) -> String {
    v.filter(|v| v.is_finite()).map_or("-".into(), ms)
}

/// Enough digits that a fast request does not read as 0 ms.
pub fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}ms")
    } else if v < 100.0 {
        format!("{v:.1}ms")
    } else {
        format!("{v:.0}ms")
    }
}

/// 14s, 14m, 1h05m.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", (s + 30) / 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_latencies_keep_their_digits() {
        assert_eq!(ms(0.42), "0.42ms");
        assert_eq!(ms(12.34), "12.3ms");
        assert_eq!(ms(420.4), "420ms");
        assert_eq!(duration(14.0), "14s");
        assert_eq!(duration(14.0 * 60.0), "14m");
        assert_eq!(duration(3900.0), "1h05m");
    }
}
