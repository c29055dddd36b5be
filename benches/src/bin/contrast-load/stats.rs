//! Latency percentiles and error tallies.

use std::collections::BTreeMap;
use std::time::Duration;

use contrast_sdk::ClientError;
use serde::Serialize;

/// Outcomes of one kind of operation.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    latencies: Vec<Duration>,
    /// The subset of `latencies` recorded with [`Tally::ok_warm`].
    warm: Vec<Duration>,
    errors: BTreeMap<String, ErrorCount>,
}

/// How often one reason occurred, with its first message.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ErrorCount {
    /// Occurrences.
    pub(crate) count: u64,
    /// The first error's message.
    pub(crate) example: String,
}

/// Summary of a [`Tally`] over a wall-clock window.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Summary {
    /// Operations attempted.
    pub(crate) attempted: u64,
    /// Operations that succeeded.
    pub(crate) succeeded: u64,
    /// Operations that failed.
    pub(crate) failed: u64,
    /// Wall time of the window, seconds.
    pub(crate) seconds: f64,
    /// Successful operations per second of the window.
    pub(crate) per_second: f64,
    /// Latency percentiles of successful operations, milliseconds.
    pub(crate) latency_ms: Percentiles,
    /// Latency percentiles of the successes recorded as warm (steady, mixed: every
    /// initializer's attestations after its first), milliseconds; absent when none were.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) warm_latency_ms: Option<Percentiles>,
    /// Failures by reason.
    pub(crate) errors: BTreeMap<String, ErrorCount>,
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub(crate) struct Percentiles {
    /// Median.
    pub(crate) p50: f64,
    /// 90th percentile.
    pub(crate) p90: f64,
    /// 99th percentile.
    pub(crate) p99: f64,
    /// Largest.
    pub(crate) max: f64,
    /// Mean.
    pub(crate) mean: f64,
}

impl Tally {
    /// Records a success taking `latency`.
    pub(crate) fn ok(&mut self, latency: Duration) {
        self.latencies.push(latency);
    }

    /// Records a success taking `latency` that is also counted in the warm percentiles.
    pub(crate) fn ok_warm(&mut self, latency: Duration) {
        self.latencies.push(latency);
        self.warm.push(latency);
    }

    /// Records a failure for `reason`.
    pub(crate) fn error(&mut self, reason: String, message: String) {
        self.errors
            .entry(reason)
            .or_insert(ErrorCount {
                count: 0,
                example: message,
            })
            .count += 1;
    }

    /// Adds `other`'s records.
    pub(crate) fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.warm.extend(other.warm);
        for (reason, count) in other.errors {
            let entry = self.errors.entry(reason).or_insert(ErrorCount {
                count: 0,
                example: count.example,
            });
            entry.count += count.count;
        }
    }

    /// The summary over a window of `elapsed`.
    pub(crate) fn summary(mut self, elapsed: Duration) -> Summary {
        self.latencies.sort_unstable();
        self.warm.sort_unstable();
        let succeeded = self.latencies.len() as u64;
        let failed: u64 = self.errors.values().map(|e| e.count).sum();
        let seconds = elapsed.as_secs_f64();
        Summary {
            attempted: succeeded + failed,
            succeeded,
            failed,
            seconds,
            per_second: if seconds > 0.0 {
                succeeded as f64 / seconds
            } else {
                0.0
            },
            latency_ms: percentiles(&self.latencies),
            warm_latency_ms: (!self.warm.is_empty()).then(|| percentiles(&self.warm)),
            errors: self.errors,
        }
    }
}

/// Nearest-rank percentiles of sorted `latencies`.
fn percentiles(sorted: &[Duration]) -> Percentiles {
    if sorted.is_empty() {
        return Percentiles::default();
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let rank = |p: f64| {
        let index = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        ms(sorted[index.clamp(1, sorted.len()) - 1])
    };
    let total: f64 = sorted.iter().map(|d| ms(*d)).sum();
    Percentiles {
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: ms(sorted[sorted.len() - 1]),
        mean: total / sorted.len() as f64,
    }
}

/// A short reason for a client error (the stage, and the server's code for a refusal).
pub(crate) fn reason(error: &ClientError) -> String {
    match error {
        ClientError::Connect { .. } => "connect".into(),
        ClientError::Timeout { stage, .. } => format!("timeout_{stage}"),
        ClientError::Attestation { .. } => "attestation".into(),
        ClientError::Handshake { .. } => "handshake".into(),
        ClientError::Api { code, .. } => format!("api_{}", code.as_str()),
        ClientError::Protocol { .. } => "protocol".into(),
        ClientError::Decode { .. } => "decode".into(),
        _ => "other".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let p = percentiles(&sorted);
        assert_eq!(p.p50, 50.0);
        assert_eq!(p.p90, 90.0);
        assert_eq!(p.p99, 99.0);
        assert_eq!(p.max, 100.0);
    }

    #[test]
    fn warm_percentiles_leave_out_the_cold_successes() {
        let mut tally = Tally::default();
        tally.ok(Duration::from_millis(900));
        for ms in 1..=9 {
            tally.ok_warm(Duration::from_millis(ms));
        }
        let summary = tally.summary(Duration::from_secs(1));
        assert_eq!(summary.succeeded, 10);
        assert_eq!(summary.latency_ms.max, 900.0);
        let warm = summary.warm_latency_ms.unwrap();
        assert_eq!(warm.max, 9.0);
        assert_eq!(warm.p50, 5.0);
        assert!(
            Tally::default()
                .summary(Duration::from_secs(1))
                .warm_latency_ms
                .is_none()
        );
    }
}
