//! Latency histograms with fixed buckets, written by one worker with relaxed atomic adds and
//! read by the management listener, in the Prometheus text format (`_bucket` cumulative
//! with `le`, `_sum` in seconds, `_count`).
//!
//! Per-route series are bounded: each worker names at most [`ROUTE_SLOTS`] routes (slot 0
//! is the gateway's own answers and unrouted requests); routes beyond that share `other`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;

/// Upper bounds in microseconds: 1 ms to 10 s, the span of a gateway's answers.
const BOUNDS_US: [u64; 13] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000,
];
const BOUND_LABELS: [&str; 13] = [
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10",
];

/// Route slots per worker, slot 0 included.
pub const ROUTE_SLOTS: usize = 64;
/// The label of slot 0.
pub const NO_ROUTE: &str = "gateway";
/// The label of the last slot, shared by routes past the others.
pub const OTHER_ROUTES: &str = "other";
/// Status classes, as labels.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last is +Inf.
    buckets: [AtomicU64; 14],
    sum_us: AtomicU64,
}

impl Histogram {
    #[inline]
    pub fn observe_us(&self, us: u64) {
        let i = BOUNDS_US
            .iter()
            .position(|&b| us <= b)
            .unwrap_or(BOUNDS_US.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    fn counts(&self) -> [u64; 14] {
        std::array::from_fn(|i| self.buckets[i].load(Relaxed))
    }
}

/// Histograms summed over workers, then written with their labels.
#[derive(Default, Clone, Copy)]
pub struct Sum {
    counts: [u64; 14],
    sum_us: u64,
}

impl Sum {
    pub fn add(&mut self, h: &Histogram) {
        for (c, n) in self.counts.iter_mut().zip(h.counts()) {
            *c += n;
        }
        self.sum_us += h.sum_us.load(Relaxed);
    }

    /// The series of one label set (`labels` like `route="app",code="2xx"`, or empty).
    pub fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        let mut cumulative = 0;
        for (i, le) in BOUND_LABELS.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        cumulative += self.counts[13];
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {cumulative}"
        );
        let braces = |s: &str| {
            if s.is_empty() {
                String::new()
            } else {
                format!("{{{s}}}")
            }
        };
        let _ = writeln!(
            out,
            "{name}_sum{} {}",
            braces(labels),
            self.sum_us as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count{} {cumulative}", braces(labels));
    }

    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }
}

/// A worker's per-route histograms: request duration by status class, upstream time.
#[derive(Debug)]
pub struct RouteStats {
    names: [OnceLock<Box<str>>; ROUTE_SLOTS],
    pub requests: [[Histogram; 5]; ROUTE_SLOTS],
    pub upstream: [Histogram; ROUTE_SLOTS],
}

impl Default for RouteStats {
    fn default() -> Self {
        let names: [OnceLock<Box<str>>; ROUTE_SLOTS] = std::array::from_fn(|_| OnceLock::new());
        let _ = names[0].set(NO_ROUTE.into());
        let _ = names[ROUTE_SLOTS - 1].set(OTHER_ROUTES.into());
        RouteStats {
            names,
            requests: std::array::from_fn(|_| Default::default()),
            upstream: std::array::from_fn(|_| Default::default()),
        }
    }
}

impl RouteStats {
    /// The slot of route `id`, given one on first sight (by the worker that owns these
    /// stats: names are written once, from one thread); the last slot when all are taken.
    pub fn slot(&self, id: &str) -> usize {
        for (i, n) in self.names.iter().enumerate().take(ROUTE_SLOTS - 1).skip(1) {
            match n.get() {
                Some(name) if &**name == id => return i,
                Some(_) => {}
                None => {
                    let _ = n.set(id.into());
                    return i;
                }
            }
        }
        ROUTE_SLOTS - 1
    }

    /// The label of slot `i`, once it has one.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names[i].get().map(|n| &**n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_sum_in_seconds() {
        let h = Histogram::default();
        h.observe_us(800);
        h.observe_us(3_000);
        h.observe_us(20_000_000);
        let mut s = Sum::default();
        s.add(&h);
        let mut out = String::new();
        s.write(&mut out, "x_seconds", "route=\"a\"");
        assert!(out.contains("x_seconds_bucket{route=\"a\",le=\"0.001\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{route=\"a\",le=\"0.005\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{route=\"a\",le=\"10\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_seconds_sum{route=\"a\"} 20.0038\n"));
        assert!(out.contains("x_seconds_count{route=\"a\"} 3\n"));
    }

    #[test]
    fn route_slots_are_bounded() {
        let r = RouteStats::default();
        assert_eq!(r.slot("app"), 1);
        assert_eq!(r.slot("api"), 2);
        assert_eq!(r.slot("app"), 1);
        for i in 0..100 {
            r.slot(&format!("r{i}"));
        }
        assert_eq!(r.slot("another"), ROUTE_SLOTS - 1);
        assert_eq!(r.name(ROUTE_SLOTS - 1), Some(OTHER_ROUTES));
        assert_eq!(r.name(0), Some(NO_ROUTE));
    }
}
