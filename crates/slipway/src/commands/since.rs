//! `--since`: a window's start, given as a date or as a duration before now.

use std::time::Duration;

use anyhow::{Result, bail};

const SECONDS_PER_DAY: f64 = 86_400.0;

/// `--since`: a date (`2024-01-31`) or a duration (`90d`, `12 weeks`), as days before now.
pub fn since_days(since: &str, now: i64) -> Result<f64> {
    if let Some(days) = parse_date(since) {
        let seconds = now - days * SECONDS_PER_DAY as i64;
        if seconds <= 0 {
            bail!(
                "--since {since} is in the future\n  help: give a past date, or a duration such as 90d"
            );
        }
        return Ok(seconds as f64 / SECONDS_PER_DAY);
    }
    match humantime::parse_duration(since) {
        Ok(d) if d > Duration::ZERO => Ok(d.as_secs_f64() / SECONDS_PER_DAY),
        _ => bail!(
            "--since `{since}` is neither a date nor a duration\n  help: write a date such as 2024-01-31, or a duration such as 90d or 26weeks"
        ),
    }
}

/// Days since the Unix epoch of a `YYYY-MM-DD` date.
fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || text.len() != 10 {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_dates_and_durations() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(parse_date("2024-03-01"), Some(19_783));
        assert!(parse_date("2024-13-01").is_none());
        let now = 19_793 * 86_400;
        assert_eq!(since_days("2024-03-01", now).unwrap(), 10.0);
        assert_eq!(since_days("90d", now).unwrap(), 90.0);
        assert!(since_days("soon", now).is_err());
    }
}
