//! CPU and memory of local processes from /proc.

use std::time::Instant;

/// Clock ticks per second for /proc times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 { p as u64 } else { 4096 }
}

/// The fields of /proc/PID/stat after the command name: [0] is the state,
/// [2] the process group, [11]/[12] utime/stime, [21] RSS pages.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime in ticks and RSS in bytes of `pid`, or None once it is gone.
pub fn read(pid: u32) -> Option<(u64, u64)> {
    let fields = stat_fields(pid)?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    Some((utime + stime, rss_pages * page_size()))
}

/// Live (not zombie) processes of process group `pgid`.
pub(crate) fn group_pids(pgid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            stat_fields(*pid).is_some_and(|f| {
                f.first().map(String::as_str) != Some("Z")
                    && f.get(2).and_then(|g| g.parse::<u32>().ok()) == Some(pgid)
            })
        })
        .collect()
}

/// CPU ticks and RSS summed over a process group; None once it is empty.
pub(crate) fn read_group(pgid: u32) -> Option<(u64, u64)> {
    let mut total: Option<(u64, u64)> = None;
    for pid in group_pids(pgid) {
        if let Some((ticks, rss)) = read(pid) {
            let t = total.get_or_insert((0, 0));
            t.0 += ticks;
            t.1 += rss;
        }
    }
    total
}

/// CPU % of one process, or of a whole process group, between successive
/// calls (100% = one core).
#[derive(Debug)]
pub(crate) struct CpuMeter {
    pid: u32,
    group: bool,
    last: Option<(Instant, u64)>,
}

impl CpuMeter {
    /// A meter over one process.
    #[cfg(test)]
    pub(crate) fn new(pid: u32) -> Self {
        let last = read(pid).map(|(ticks, _)| (Instant::now(), ticks));
        CpuMeter {
            pid,
            group: false,
            last,
        }
    }

    /// A meter over every process of the group `pgid` leads: a replica's
    /// supervisor, its command and whatever that command started.
    pub fn group(pgid: u32) -> Self {
        let last = read_group(pgid).map(|(ticks, _)| (Instant::now(), ticks));
        CpuMeter {
            pid: pgid,
            group: true,
            last,
        }
    }

    fn read(&self) -> Option<(u64, u64)> {
        if self.group {
            read_group(self.pid)
        } else {
            read(self.pid)
        }
    }

    /// CPU % since the previous sample and current RSS; None when the process is gone.
    pub fn sample(&mut self) -> Option<(f64, u64)> {
        let (ticks, rss) = self.read()?;
        let now = Instant::now();
        let pct = match self.last {
            Some((t0, k0)) => {
                let dt = now.duration_since(t0).as_secs_f64();
                if dt > 0.0 {
                    (ticks.saturating_sub(k0)) as f64 / ticks_per_second() / dt * 100.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        Some((pct, rss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_sees_cpu_burnt() {
        let pid = std::process::id();
        let (_, rss) = read(pid).unwrap();
        assert!(rss > 1 << 20, "rss {rss}");
        let mut meter = CpuMeter::new(pid);
        let (ticks0, _) = read(pid).unwrap();
        // Burn until the kernel has charged 200 ms of CPU, however busy the
        // machine is, then the meter must show it.
        let start = Instant::now();
        let mut x = 0u64;
        while read(pid).unwrap().0 < ticks0 + 20 && start.elapsed().as_secs() < 10 {
            for _ in 0..100_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let wall = start.elapsed().as_secs_f64();
        let (pct, _) = meter.sample().unwrap();
        let floor = 0.2 / wall * 100.0 * 0.9;
        assert!(
            pct >= floor,
            "200 ms of CPU in {wall:.2} s measured at {pct}%"
        );
        assert!(read(u32::MAX - 1).is_none());
    }
}
