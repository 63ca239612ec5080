//! CPU time of the calling thread from /proc (Linux only).

/// Clock ticks per second of /proc times; 100 on every mainstream Linux build.
pub(crate) const CLK_TCK: f64 = 100.0;

/// utime + stime of the current thread, in clock ticks.
///
/// Per-thread rather than process time, so a server or other work running in
/// the same process does not count as load-generator CPU.
pub(crate) fn thread_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<u64> {
    // The command name (field 2) may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utime_and_stime() {
        let line = "4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 17 5 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(22));
        assert_eq!(parse_stat("garbage"), None);
        assert!(thread_ticks().is_some());
    }
}
