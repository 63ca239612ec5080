//! Reading Locust's process logs without holding them: a log may grow to
//! gigabytes (a chatty locustfile), so it is scanned line by line through a
//! fixed buffer, each line cut at [`MAX_LINE`] bytes.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// The part of a line that is looked at; Locust's own messages are short.
pub(super) const MAX_LINE: usize = 4096;

/// Calls `f` with every line of the file (without its newline, cut at
/// [`MAX_LINE`] bytes) until it returns true; whether it did.
pub(super) fn any_line(path: &Path, mut f: impl FnMut(&str) -> bool) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, file);
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE);
    loop {
        let (done, used) = match reader.fill_buf() {
            Ok([]) => {
                return !line.is_empty() && f(&String::from_utf8_lossy(&line));
            }
            Ok(buf) => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    take(&mut line, &buf[..i]);
                    (true, i + 1)
                }
                None => {
                    take(&mut line, buf);
                    (false, buf.len())
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        };
        reader.consume(used);
        if done {
            if f(&String::from_utf8_lossy(&line)) {
                return true;
            }
            line.clear();
        }
    }
}

/// Appends to `line` what still fits in [`MAX_LINE`].
fn take(line: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(line.len());
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

/// The first line of any of `logs` that holds one of `needles`.
pub(super) fn first_line_with(logs: &[impl AsRef<Path>], needles: &[&str]) -> Option<String> {
    let mut found = None;
    for log in logs {
        if any_line(log.as_ref(), |l| {
            let hit = needles.iter().any(|n| l.contains(n));
            if hit {
                found = Some(l.trim().to_string());
            }
            hit
        }) {
            break;
        }
    }
    found
}

/// Locust logs this on a process whose CPU stayed above 90% (workers log it
/// themselves; the master logs it for workers it heard it from).
pub(super) fn logged_cpu_warning(logs: &[std::path::PathBuf]) -> bool {
    first_line_with(logs, &["CPU usage above", "exceeded cpu threshold"]).is_some()
}

/// What Locust's master logs when a worker stops sending heartbeats (it
/// died, or was killed, or hangs).
pub(super) const WORKER_MISSING: &str = "setting state to missing";

/// Makes `stats` degraded when workers were lost mid-window: those seen to
/// exit, or else one the master's log says went missing (a worker started
/// elsewhere).
pub(super) fn degrade_for_lost_workers(
    stats: &mut crate::engine::stats::CellStats,
    mut lost: Vec<String>,
    master_log: Option<&std::path::PathBuf>,
) {
    if lost.is_empty()
        && let Some(line) = master_log.and_then(|m| first_line_with(&[m], &[WORKER_MISSING]))
    {
        lost.push(format!("Locust's master lost a worker mid-window: {line}"));
    }
    if !lost.is_empty() {
        let message = format!(
            "{}; the load of the window was not what the plan asked for",
            lost.join("; ")
        );
        stats.warnings.push(message.clone());
        stats.degraded.get_or_insert(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_line_in_a_log_larger_than_any_buffer() {
        let dir = std::env::temp_dir().join(format!("lm-locust-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("big.log");
        let mut text = String::new();
        // A line far longer than MAX_LINE, then a needle beyond every buffer.
        text.push_str(&"x".repeat(200_000));
        text.push_str(" CPU usage above 90% hidden past the cut\n");
        for i in 0..20_000 {
            text.push_str(&format!("[2026] INFO/locust.runners: line {i}\n"));
        }
        text.push_str("[2026] INFO/locust.runners: Worker abc failed to send heartbeat, setting state to missing.\n");
        text.push_str("no newline at the end CPU usage above 90%");
        std::fs::write(&log, &text).unwrap();
        assert_eq!(
            first_line_with(&[&log], &[WORKER_MISSING]).as_deref(),
            Some(
                "[2026] INFO/locust.runners: Worker abc failed to send heartbeat, setting state to missing."
            )
        );
        // The needle past the long line's cut is not seen; the unterminated last line is.
        assert_eq!(
            first_line_with(&[&log], &["CPU usage above"]).as_deref(),
            Some("no newline at the end CPU usage above 90%")
        );
        assert_eq!(first_line_with(&[&log], &["absent"]), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
