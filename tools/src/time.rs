//! Time helpers: printing nanosecond timestamps, and New York session dates.

use chrono::{DateTime, Datelike, NaiveDate, Timelike};
use nq_runtime::calendar;

/// `2023-11-20T14:30:00.25Z`-style UTC text for a nanosecond timestamp.
pub fn format_ts(ts_ns: i64) -> String {
    let dt = DateTime::from_timestamp_nanos(ts_ns);
    let nanos = dt.nanosecond();
    if nanos == 0 {
        dt.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        let frac = format!("{nanos:09}");
        format!(
            "{}.{}Z",
            dt.format("%Y-%m-%dT%H:%M:%S"),
            frac.trim_end_matches('0')
        )
    }
}

/// New York local time and CME trading dates, from the runtime's calendar
/// (`nq_runtime::calendar`: the one DST and trading-date rule the engine and
/// the trainer use too).
#[derive(Debug, Default)]
pub struct NewYorkClock;

/// A moment in New York local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub date: NaiveDate,
    /// Minutes after local midnight.
    pub minute_of_day: u16,
}

/// The date of a day number (days since 1970-01-01).
pub fn date_of_day(day: i64) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).unwrap_or_default()
}

impl NewYorkClock {
    pub fn new() -> Self {
        NewYorkClock
    }

    pub fn local(&mut self, ts_ns: i64) -> LocalTime {
        let local = calendar::to_new_york(ts_ns);
        LocalTime {
            date: date_of_day(local.day),
            minute_of_day: local.minute_of_day() as u16,
        }
    }

    /// The CME trading date ([`calendar::trading_day`]): the New York
    /// calendar date, except that trades from 18:00 on belong to the next
    /// day's Globex session.
    pub fn trading_date(&mut self, ts_ns: i64) -> NaiveDate {
        date_of_day(calendar::trading_day(ts_ns))
    }
}

/// `YYYY-MM-DD`.
pub fn format_date(d: NaiveDate) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), d.month(), d.day())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format_ts(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_ts(1_700_434_800_250_000_000),
            "2023-11-19T23:00:00.25Z"
        );
    }

    use nq_formats::market::NS_PER_SEC;

    #[test]
    fn new_york_follows_dst() {
        let mut c = NewYorkClock::new();
        // 2023-03-10 15:00 UTC is 10:00 EST; 2023-03-13 15:00 UTC is 11:00 EDT.
        let est = 1_678_460_400 * NS_PER_SEC;
        let edt = 1_678_719_600 * NS_PER_SEC;
        assert_eq!(c.local(est).minute_of_day, 10 * 60);
        assert_eq!(c.local(edt).minute_of_day, 11 * 60);
        // Sunday 2023-11-19 23:00 UTC = 18:00 EST -> trading date Monday the 20th.
        let sunday_open = 1_700_434_800 * NS_PER_SEC;
        assert_eq!(format_date(c.trading_date(sunday_open)), "2023-11-20");
    }
}
