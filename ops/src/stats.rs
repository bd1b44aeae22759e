//! Latency and throughput accounting for `perf`: an HDR histogram for exact-enough
//! percentiles over the whole run, a resettable window for the 5-second progress lines,
//! and the summary in Kafka's perf-test wording or as one JSON object.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Kafka's perf tools report MB as 2^20 bytes; we do the same so numbers compare.
const BYTES_PER_MB: f64 = 1024.0 * 1024.0;
/// Highest latency the histogram tracks exactly; larger samples are clamped to it.
const LATENCY_MAX_US: u64 = 60 * 60 * 1_000_000;
/// Three significant figures: 0.1% error on every reported percentile.
const LATENCY_SIGFIGS: u8 = 3;

/// Per-record delivery latencies and byte counts.
#[derive(Debug)]
pub struct LatencyStats {
    histogram: Histogram<u64>,
    bytes: u64,
    window: Window,
}

/// What happened since the last progress line.
#[derive(Debug, Default, Clone, Copy)]
struct Window {
    records: u64,
    bytes: u64,
    latency_sum_us: u64,
    latency_max_us: u64,
}

impl Default for LatencyStats {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyStats {
    pub fn new() -> Self {
        let histogram = Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIGS)
            .expect("static histogram bounds are valid");
        Self {
            histogram,
            bytes: 0,
            window: Window::default(),
        }
    }

    /// Records one delivered record of `bytes` that took `latency` from send to ack.
    pub fn record(&mut self, latency: Duration, bytes: u64) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_MAX_US);
        self.histogram.saturating_record(us);
        self.bytes += bytes;
        self.window.records += 1;
        self.window.bytes += bytes;
        self.window.latency_sum_us += us;
        self.window.latency_max_us = self.window.latency_max_us.max(us);
    }

    /// Returns the progress line for the window that just ended and starts a new one.
    pub fn take_window_line(&mut self, window_elapsed: Duration) -> String {
        let w = std::mem::take(&mut self.window);
        let secs = window_elapsed.as_secs_f64().max(f64::EPSILON);
        let avg_ms = if w.records == 0 {
            0.0
        } else {
            w.latency_sum_us as f64 / w.records as f64 / 1000.0
        };
        format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency.",
            w.records,
            w.records as f64 / secs,
            w.bytes as f64 / BYTES_PER_MB / secs,
            avg_ms,
            w.latency_max_us as f64 / 1000.0,
        )
    }

    /// Summarises the whole run; `elapsed` is from the first send to the last ack.
    pub fn summary(&self, elapsed: Duration, errors: u64) -> ProduceSummary {
        let h = &self.histogram;
        let secs = elapsed.as_secs_f64().max(f64::EPSILON);
        let ms = |us: u64| us as f64 / 1000.0;
        let empty = h.is_empty();
        let pct = |q: f64| {
            if empty {
                0.0
            } else {
                ms(h.value_at_quantile(q))
            }
        };
        ProduceSummary {
            records: h.len(),
            errors,
            bytes: self.bytes,
            elapsed_s: elapsed.as_secs_f64(),
            records_per_sec: h.len() as f64 / secs,
            mb_per_sec: self.bytes as f64 / BYTES_PER_MB / secs,
            latency_avg_ms: if empty { 0.0 } else { h.mean() / 1000.0 },
            latency_p50_ms: pct(0.50),
            latency_p95_ms: pct(0.95),
            latency_p99_ms: pct(0.99),
            latency_p999_ms: pct(0.999),
            latency_max_ms: if empty { 0.0 } else { ms(h.max()) },
        }
    }
}

/// Latency percentiles of a run in milliseconds (zeros for an empty run).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyPercentiles {
    pub latency_avg_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_p999_ms: f64,
    pub latency_max_ms: f64,
}

impl LatencyStats {
    /// Samples recorded so far.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The run's latency percentiles, for summaries other than `perf produce`'s.
    pub fn percentiles(&self) -> LatencyPercentiles {
        let s = self.summary(Duration::from_secs(1), 0);
        LatencyPercentiles {
            latency_avg_ms: s.latency_avg_ms,
            latency_p50_ms: s.latency_p50_ms,
            latency_p95_ms: s.latency_p95_ms,
            latency_p99_ms: s.latency_p99_ms,
            latency_p999_ms: s.latency_p999_ms,
            latency_max_ms: s.latency_max_ms,
        }
    }
}

/// The smallest, middle and largest of a few measurements (rounds or runs of a benchmark);
/// the median of an even count is the mean of the middle two. Zeros when there are none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => 0.0,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
        };
        Spread {
            min: sorted.first().copied().unwrap_or(0.0),
            median,
            max: sorted.last().copied().unwrap_or(0.0),
        }
    }
}

/// Final result of `perf produce`; field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProduceSummary {
    /// Records acknowledged by the broker.
    pub records: u64,
    /// Records whose delivery failed.
    pub errors: u64,
    pub bytes: u64,
    pub elapsed_s: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    pub latency_avg_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_p999_ms: f64,
    pub latency_max_ms: f64,
}

impl ProduceSummary {
    /// The closing line in kafka-producer-perf-test's wording.
    pub fn to_text(&self) -> String {
        let mut line = format!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.2} ms avg latency, \
             {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 95th, {:.2} ms 99th, {:.2} ms 99.9th.",
            self.records,
            self.records_per_sec,
            self.mb_per_sec,
            self.latency_avg_ms,
            self.latency_max_ms,
            self.latency_p50_ms,
            self.latency_p95_ms,
            self.latency_p99_ms,
            self.latency_p999_ms,
        );
        if self.errors > 0 {
            line.push_str(&format!(" {} records failed.", self.errors));
        }
        line
    }
}

/// Final result of `perf consume`; field names are a stable interface for scripts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConsumeSummary {
    pub records: u64,
    pub bytes: u64,
    /// From the end of setup (assign/subscribe) to the last record counted.
    pub elapsed_s: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// From the end of setup to the first record; includes group join when `--group` is set.
    pub time_to_first_record_ms: f64,
}

impl ConsumeSummary {
    pub fn new(records: u64, bytes: u64, elapsed: Duration, first_record: Duration) -> Self {
        // Rates are over the time spent fetching, not waiting for the first record, so that
        // group-join or connection time does not hide the data rate.
        let fetch_secs = elapsed
            .saturating_sub(first_record)
            .as_secs_f64()
            .max(f64::EPSILON);
        Self {
            records,
            bytes,
            elapsed_s: elapsed.as_secs_f64(),
            records_per_sec: records as f64 / fetch_secs,
            mb_per_sec: bytes as f64 / BYTES_PER_MB / fetch_secs,
            time_to_first_record_ms: first_record.as_secs_f64() * 1000.0,
        }
    }

    pub fn to_text(&self) -> String {
        format!(
            "{} records received, {:.2} MB, {:.1} records/sec ({:.2} MB/sec), \
             {:.1} ms to first record, {:.3} s total.",
            self.records,
            self.bytes as f64 / BYTES_PER_MB,
            self.records_per_sec,
            self.mb_per_sec,
            self.time_to_first_record_ms,
            self.elapsed_s,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_from_uniform_latencies() {
        let mut s = LatencyStats::new();
        for ms in 1..=1000u64 {
            s.record(Duration::from_millis(ms), 100);
        }
        let sum = s.summary(Duration::from_secs(2), 0);
        assert_eq!(sum.records, 1000);
        assert_eq!(sum.bytes, 100_000);
        assert!((sum.records_per_sec - 500.0).abs() < 1e-9);
        let close = |got: f64, want: f64| (got - want).abs() / want < 0.002;
        assert!(close(sum.latency_p50_ms, 500.0), "{}", sum.latency_p50_ms);
        assert!(close(sum.latency_p95_ms, 950.0), "{}", sum.latency_p95_ms);
        assert!(close(sum.latency_p99_ms, 990.0), "{}", sum.latency_p99_ms);
        assert!(close(sum.latency_p999_ms, 999.0), "{}", sum.latency_p999_ms);
        assert!(close(sum.latency_max_ms, 1000.0), "{}", sum.latency_max_ms);
        assert!(close(sum.latency_avg_ms, 500.5), "{}", sum.latency_avg_ms);
    }

    #[test]
    fn sub_millisecond_latencies_keep_precision() {
        let mut s = LatencyStats::new();
        s.record(Duration::from_micros(250), 1);
        let sum = s.summary(Duration::from_secs(1), 0);
        assert!(
            (sum.latency_p50_ms - 0.25).abs() < 0.001,
            "{}",
            sum.latency_p50_ms
        );
    }

    #[test]
    fn empty_run_reports_zeros_not_nan() {
        let sum = LatencyStats::new().summary(Duration::ZERO, 3);
        assert_eq!(sum.records, 0);
        assert_eq!(sum.latency_p99_ms, 0.0);
        assert!(sum.records_per_sec.is_finite());
        assert!(sum.to_text().ends_with("3 records failed."));
    }

    #[test]
    fn window_resets_after_each_line() {
        let mut s = LatencyStats::new();
        s.record(Duration::from_millis(2), 1024 * 1024);
        s.record(Duration::from_millis(4), 1024 * 1024);
        let line = s.take_window_line(Duration::from_secs(2));
        assert_eq!(
            line,
            "2 records sent, 1.0 records/sec (1.00 MB/sec), 3.00 ms avg latency, 4.00 ms max latency."
        );
        assert!(s
            .take_window_line(Duration::from_secs(1))
            .starts_with("0 records sent, 0.0"));
        assert_eq!(
            s.summary(Duration::from_secs(1), 0).records,
            2,
            "the run histogram is kept"
        );
    }

    #[test]
    fn json_has_stable_field_names() {
        let mut s = LatencyStats::new();
        s.record(Duration::from_millis(1), 10);
        let v = serde_json::to_value(s.summary(Duration::from_secs(1), 0)).unwrap();
        for key in [
            "records",
            "errors",
            "records_per_sec",
            "mb_per_sec",
            "latency_avg_ms",
            "latency_p50_ms",
            "latency_p95_ms",
            "latency_p99_ms",
            "latency_p999_ms",
            "latency_max_ms",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn spread_of_odd_even_and_no_values() {
        let s = Spread::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.0, 3.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
        assert_eq!(Spread::of(&[]).median, 0.0);
    }

    #[test]
    fn consume_rates_exclude_time_to_first_record() {
        let c = ConsumeSummary::new(
            1000,
            1024 * 1024,
            Duration::from_secs(3),
            Duration::from_secs(1),
        );
        assert!((c.records_per_sec - 500.0).abs() < 1e-9);
        assert!((c.mb_per_sec - 0.5).abs() < 1e-9);
        assert!((c.time_to_first_record_ms - 1000.0).abs() < 1e-9);
    }
}
