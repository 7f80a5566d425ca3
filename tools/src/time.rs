//! Time helpers: printing nanosecond timestamps, and New York session dates.

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Timelike};
use chrono_tz::America::New_York;
use nq_formats::market::NS_PER_SEC;

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

/// Converts UTC nanoseconds to New York local time, caching the UTC offset per
/// hour because the rules only ever change on an hour boundary.
#[derive(Debug, Default)]
pub struct NewYorkClock {
    cached_hour: i64,
    cached_offset_s: i64,
    valid: bool,
}

/// A moment in New York local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    pub date: NaiveDate,
    /// Minutes after local midnight.
    pub minute_of_day: u16,
}

impl NewYorkClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// UTC offset in seconds (negative: New York is behind UTC).
    pub fn offset_seconds(&mut self, ts_ns: i64) -> i64 {
        let secs = ts_ns.div_euclid(NS_PER_SEC);
        let hour = secs.div_euclid(3600);
        if !self.valid || hour != self.cached_hour {
            let utc = DateTime::from_timestamp(hour * 3600, 0).unwrap_or_default();
            self.cached_offset_s = i64::from(
                New_York
                    .offset_from_utc_datetime(&utc.naive_utc())
                    .fix()
                    .local_minus_utc(),
            );
            self.cached_hour = hour;
            self.valid = true;
        }
        self.cached_offset_s
    }

    pub fn local(&mut self, ts_ns: i64) -> LocalTime {
        let local_s = ts_ns.div_euclid(NS_PER_SEC) + self.offset_seconds(ts_ns);
        let days = local_s.div_euclid(86_400);
        let sod = local_s.rem_euclid(86_400);
        let date =
            NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32).unwrap_or_default();
        LocalTime {
            date,
            minute_of_day: (sod / 60) as u16,
        }
    }

    /// The CME trading date: the New York calendar date, except that trades from
    /// 18:00 on belong to the next day's Globex session.
    pub fn trading_date(&mut self, ts_ns: i64) -> NaiveDate {
        let l = self.local(ts_ns);
        if l.minute_of_day >= 18 * 60 {
            l.date.succ_opt().unwrap_or(l.date)
        } else {
            l.date
        }
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
