//! The verification time, always a parameter.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time as whole seconds since the Unix epoch (UTC).
///
/// Verification never reads the clock: callers pass `UnixTime::from(SystemTime::now())` in
/// production and a fixed value in tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(u64);

impl UnixTime {
    /// The time `secs` seconds after the Unix epoch.
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs)
    }

    /// Seconds since the Unix epoch.
    #[must_use]
    pub const fn secs(self) -> u64 {
        self.0
    }
}

impl From<SystemTime> for UnixTime {
    /// Times before the epoch map to the epoch.
    fn from(time: SystemTime) -> Self {
        Self(time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }
}

impl From<x509_cert::time::Time> for UnixTime {
    fn from(time: x509_cert::time::Time) -> Self {
        Self(time.to_unix_duration().as_secs())
    }
}

impl fmt::Display for UnixTime {
    /// RFC 3339 in UTC, e.g. `2025-12-10T22:14:21Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match der::DateTime::from_unix_duration(Duration::from_secs(self.0)) {
            Ok(date) => write!(f, "{date}"),
            Err(_) => write!(f, "{} s after the epoch", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339() {
        assert_eq!(
            UnixTime::from_secs(1_765_404_861).to_string(),
            "2025-12-10T22:14:21Z"
        );
    }
}
