//! Lock-free counters rendered in the Prometheus text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds; much finer than Prometheus' defaults, so that a
/// quantile interpolated from the buckets (as `histogram_quantile` does) lands
/// within a few percent of the true latency for typical service times.
const BUCKETS: [f64; 55] = [
    0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.045,
    0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.11, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18, 0.19, 0.2,
    0.225, 0.25, 0.275, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5, 2.0, 2.5,
    3.0, 4.0, 5.0, 7.5, 10.0, 20.0, 30.0, 60.0,
];

#[derive(Debug)]
pub(crate) struct Metrics {
    /// Keyed by HTTP status; a Mutex is cheap next to a simulated service time.
    requests: Mutex<BTreeMap<u16, u64>>,
    in_flight: AtomicI64,
    queue_depth: AtomicI64,
    /// Per-bucket (not cumulative) counts; the last slot is the +Inf overflow.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    stalled: AtomicBool,
    slots: usize,
    replica: usize,
}

impl Metrics {
    pub(crate) fn new(slots: usize, replica: usize) -> Self {
        // Pre-seeded so scrapers see the series before the first request.
        let requests = [200, 400, 500].into_iter().map(|s| (s, 0)).collect();
        Self {
            requests: Mutex::new(requests),
            in_flight: AtomicI64::new(0),
            queue_depth: AtomicI64::new(0),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            slots,
            replica,
        }
    }

    pub(crate) fn count_request(&self, status: u16) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry(status).or_insert(0) += 1;
    }

    pub(crate) fn observe_duration(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let index = BUCKETS
            .iter()
            .position(|&bound| secs <= bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub(crate) fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    /// Counts a request as queued until the guard is dropped.
    pub(crate) fn queued(&self) -> GaugeGuard<'_> {
        GaugeGuard::new(&self.queue_depth)
    }

    /// Counts a request as holding a slot until the guard is dropped.
    pub(crate) fn in_service(&self) -> GaugeGuard<'_> {
        GaugeGuard::new(&self.in_flight)
    }

    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str(
            "# HELP demo_requests_total POST /predict requests answered, by HTTP status.\n\
             # TYPE demo_requests_total counter\n",
        );
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for (status, count) in requests {
            let _ = writeln!(out, "demo_requests_total{{status=\"{status}\"}} {count}");
        }

        let _ = write!(
            out,
            "# HELP demo_in_flight /predict requests holding an inference slot.\n\
             # TYPE demo_in_flight gauge\n\
             demo_in_flight {}\n\
             # HELP demo_queue_depth /predict requests waiting for an inference slot.\n\
             # TYPE demo_queue_depth gauge\n\
             demo_queue_depth {}\n",
            self.in_flight.load(Ordering::Relaxed),
            self.queue_depth.load(Ordering::Relaxed),
        );

        out.push_str(
            "# HELP demo_request_duration_seconds Arrival to response of /predict requests \
             that reached the model (queueing, service and stalls).\n\
             # TYPE demo_request_duration_seconds histogram\n",
        );
        let mut cumulative = 0u64;
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "demo_request_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = write!(
            out,
            "demo_request_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}\n\
             demo_request_duration_seconds_sum {sum}\n\
             demo_request_duration_seconds_count {cumulative}\n"
        );

        let _ = write!(
            out,
            "# HELP demo_slots Concurrent inference slots of this replica.\n\
             # TYPE demo_slots gauge\n\
             demo_slots {}\n\
             # HELP demo_stalled 1 while the simulated stall is in effect.\n\
             # TYPE demo_stalled gauge\n\
             demo_stalled {}\n\
             # HELP demo_replica Replica index of this server, as a label (value is always 1).\n\
             # TYPE demo_replica gauge\n\
             demo_replica{{replica=\"{}\"}} 1\n",
            self.slots,
            u8::from(self.stalled.load(Ordering::Relaxed)),
            self.replica,
        );
        out
    }
}

/// Increments a gauge now and decrements it on drop, so requests abandoned by
/// a disconnecting client do not leave the gauge stuck.
#[derive(Debug)]
pub(crate) struct GaugeGuard<'a> {
    gauge: &'a AtomicI64,
}

impl<'a> GaugeGuard<'a> {
    fn new(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self { gauge }
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.gauge.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_histogram_and_gauges() {
        let metrics = Metrics::new(4, 2);
        metrics.count_request(200);
        metrics.count_request(200);
        metrics.count_request(413);
        metrics.observe_duration(Duration::from_millis(3));
        metrics.observe_duration(Duration::from_secs(120));
        let _queued = metrics.queued();
        {
            let _serving = metrics.in_service();
            let text = metrics.render();
            assert!(text.contains("demo_in_flight 1\n"), "{text}");
        }
        let text = metrics.render();
        for line in [
            "demo_requests_total{status=\"200\"} 2\n",
            "demo_requests_total{status=\"400\"} 0\n",
            "demo_requests_total{status=\"413\"} 1\n",
            "demo_requests_total{status=\"500\"} 0\n",
            "demo_in_flight 0\n",
            "demo_queue_depth 1\n",
            "demo_request_duration_seconds_bucket{le=\"0.001\"} 0\n",
            "demo_request_duration_seconds_bucket{le=\"0.005\"} 1\n",
            "demo_request_duration_seconds_bucket{le=\"60\"} 1\n",
            "demo_request_duration_seconds_bucket{le=\"+Inf\"} 2\n",
            "demo_request_duration_seconds_sum 120.003\n",
            "demo_request_duration_seconds_count 2\n",
            "demo_slots 4\n",
            "demo_stalled 0\n",
            "demo_replica{replica=\"2\"} 1\n",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
