//! Points in time as the record stores them: integer milliseconds since the Unix epoch, UTC.
//!
//! Integers sort and compare the same way in SQLite and PostgreSQL and need no date library;
//! [`UnixMillis::to_rfc3339`] is for people reading them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixMillis(pub i64);

impl UnixMillis {
    /// The current time from the system clock.
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`]; times before 1970 clamp to the epoch, as nothing in the
    /// record can have happened then.
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Self(millis)
    }

    /// This time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }

    /// How long after `earlier` this time is; zero if it is not after it (clocks on two
    /// hosts can disagree).
    pub fn since(self, earlier: UnixMillis) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// RFC 3339 text in UTC with millisecond precision, e.g. `2024-05-01T12:00:00.000Z`.
    pub fn to_rfc3339(self) -> String {
        humantime::format_rfc3339_millis(self.to_system_time()).to_string()
    }
}

impl fmt::Display for UnixMillis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

/// A duration rounded to whole seconds, for messages (`3m 2s` rather than `3m 2s 41ms 7us`).
pub fn human_duration(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_as_rfc3339_utc() {
        assert_eq!(
            UnixMillis(1_700_000_000_123).to_rfc3339(),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn since_never_goes_negative() {
        assert_eq!(UnixMillis(10).since(UnixMillis(20)), Duration::ZERO);
        assert_eq!(
            UnixMillis(2_500).since(UnixMillis(1_000)),
            Duration::from_millis(1_500)
        );
    }

    #[test]
    fn human_duration_drops_sub_second_noise() {
        assert_eq!(human_duration(Duration::from_millis(182_417)), "3m 2s");
    }
}
