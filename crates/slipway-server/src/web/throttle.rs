//! Sign-in throttling: after [`MAX_FAILURES`] wrong passwords for one name within
//! [`WINDOW`], that name's sign-ins are refused until [`WINDOW`] has passed since the last
//! failure, right password or not, so a password cannot be guessed at the speed of the
//! server. A successful sign-in clears the name's count.
//!
//! Counted by name rather than by address: behind a proxy every address is the proxy's, and
//! a guesser can change address but not the name they are after. The cost is that anyone
//! can keep a name locked out by failing on purpose; an admin's `slipway token` and the
//! command line still work then. The counts live in the server's memory: a restart clears
//! them, and each server of several counts its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Wrong passwords for one name before its sign-ins are refused.
pub const MAX_FAILURES: u32 = 5;
/// How long failures count, and how long a name stays refused after its last one.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Names tracked at most; beyond it the stalest are forgotten, so a flood of made-up names
/// cannot grow the map without end.
const MAX_NAMES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// The failed sign-ins of each name.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    names: Mutex<HashMap<String, Failures>>,
}

impl LoginThrottle {
    /// How long `name` must still wait before a sign-in is tried at all; `None` when it may
    /// sign in now.
    pub fn wait(&self, name: &str, now: Instant) -> Option<Duration> {
        let names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        let failures = names.get(name)?;
        let since = now.saturating_duration_since(failures.last);
        (failures.count >= MAX_FAILURES && since < WINDOW).then(|| WINDOW - since)
    }

    /// A wrong password (or a name not on record) for `name`.
    pub fn failed(&self, name: &str, now: Instant) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        if names.len() >= MAX_NAMES && !names.contains_key(name) {
            names.retain(|_, f| now.saturating_duration_since(f.last) < WINDOW);
            if names.len() >= MAX_NAMES
                && let Some(stalest) = names
                    .iter()
                    .min_by_key(|(_, f)| f.last)
                    .map(|(n, _)| n.clone())
            {
                names.remove(&stalest);
            }
        }
        let failures = names.entry(name.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        });
        // Failures older than the window no longer count.
        if now.saturating_duration_since(failures.last) >= WINDOW {
            failures.count = 0;
        }
        failures.count += 1;
        failures.last = now;
    }

    /// A successful sign-in of `name`.
    pub fn succeeded(&self, name: &str) {
        let mut names = self.names.lock().unwrap_or_else(|e| e.into_inner());
        names.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_refused_after_five_failures_until_the_window_passes() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for n in 0..MAX_FAILURES {
            assert_eq!(throttle.wait("ada", start), None, "after {n} failures");
            throttle.failed("ada", start);
        }
        assert_eq!(throttle.wait("ada", start), Some(WINDOW));
        let later = start + Duration::from_secs(60);
        assert_eq!(
            throttle.wait("ada", later),
            Some(WINDOW - Duration::from_secs(60))
        );
        assert_eq!(
            throttle.wait("vic", later),
            None,
            "other names are not held up"
        );
        assert_eq!(throttle.wait("ada", start + WINDOW), None);
    }

    #[test]
    fn failures_outside_the_window_and_before_a_success_do_not_count() {
        let throttle = LoginThrottle::default();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            throttle.failed("ada", start);
        }
        throttle.failed("ada", start + WINDOW);
        assert_eq!(
            throttle.wait("ada", start + WINDOW),
            None,
            "the old four expired"
        );

        for _ in 0..MAX_FAILURES - 1 {
            throttle.failed("vic", start);
        }
        throttle.succeeded("vic");
        throttle.failed("vic", start);
        assert_eq!(throttle.wait("vic", start), None);
    }

    #[test]
    fn made_up_names_cannot_grow_the_map_without_end() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        for n in 0..MAX_NAMES + 50 {
            throttle.failed(&format!("name-{n}"), now + Duration::from_millis(n as u64));
        }
        assert!(throttle.names.lock().unwrap().len() <= MAX_NAMES);
    }
}
