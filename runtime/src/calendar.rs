//! America/New_York time and trading sessions, without a tz database
//! (SPEC section 4).
//!
//! The US daylight-saving rules are in code: since 2007 DST runs from the
//! second Sunday of March, 02:00 local, to the first Sunday of November,
//! 02:00 local; from 1987 to 2006 from the first Sunday of April to the last
//! Sunday of October. Earlier instants use the 1987 rule, which is not
//! historically exact before 1987 (no data that old is in scope). The rules are
//! checked against Python's zoneinfo at every transition 1990-2035
//! (`fixtures/dst/`).
//!
//! Sessions follow [`SessionHours`]: a session runs `[start, end)` in local
//! wall time; one that crosses midnight belongs to the calendar day on which
//! it ends, so a Sunday-evening Globex bar is in Monday's session. There is no
//! holiday calendar: days without data simply have no bars.
//!
//! Every function accepts any `i64` timestamp without panicking; arithmetic
//! near the ends of the `i64` range saturates.

use nq_formats::market::NS_PER_SEC;
use nq_formats::SessionHours;

pub const NS_PER_MINUTE: i64 = 60 * NS_PER_SEC;
pub const NS_PER_HOUR: i64 = 60 * NS_PER_MINUTE;
pub const NS_PER_DAY: i64 = 24 * NS_PER_HOUR;

/// Eastern Standard Time, UTC-5, in seconds.
pub const EST_OFFSET_S: i32 = -5 * 3600;
/// Eastern Daylight Time, UTC-4, in seconds.
pub const EDT_OFFSET_S: i32 = -4 * 3600;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`). `month` is 1-12 and `day` 1-31; other values give a
/// meaningless but non-panicking result.
pub const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let month = if month == 0 || month > 12 {
        1
    } else {
        month as i64
    };
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date `(year, month, day)` of a day number (inverse of
/// [`days_from_civil`]).
pub const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + (month <= 2) as i64;
    (year, month, day)
}

/// Day of the week of a day number: 0 Sunday, 1 Monday, ..., 6 Saturday.
pub const fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (days + 4).rem_euclid(7) as u32
}

/// Day number of the `n`-th (1-based) Sunday of a month.
const fn nth_sunday(year: i64, month: u32, n: i64) -> i64 {
    let first = days_from_civil(year, month, 1);
    let first_sunday = first + ((7 - weekday(first) as i64) % 7);
    first_sunday + 7 * (n - 1)
}

const fn last_sunday(year: i64, month: u32, last_day: u32) -> i64 {
    let last = days_from_civil(year, month, last_day);
    last - weekday(last) as i64
}

/// The daylight-saving interval of `year` as UTC nanoseconds `[start, end)`.
pub const fn dst_interval_utc(year: i64) -> (i64, i64) {
    let (start_day, end_day) = if year >= 2007 {
        (nth_sunday(year, 3, 2), nth_sunday(year, 11, 1))
    } else {
        (nth_sunday(year, 4, 1), last_sunday(year, 10, 31))
    };
    // 02:00 EST is 07:00 UTC; 02:00 EDT is 06:00 UTC.
    let start = start_day
        .saturating_mul(NS_PER_DAY)
        .saturating_add(7 * NS_PER_HOUR);
    let end = end_day
        .saturating_mul(NS_PER_DAY)
        .saturating_add(6 * NS_PER_HOUR);
    (start, end)
}

/// The New York UTC offset in force at a UTC instant, in seconds.
pub const fn ny_offset_seconds(utc_ns: i64) -> i32 {
    let (year, _, _) = civil_from_days(utc_ns.div_euclid(NS_PER_DAY));
    let (start, end) = dst_interval_utc(year);
    if utc_ns >= start && utc_ns < end {
        EDT_OFFSET_S
    } else {
        EST_OFFSET_S
    }
}

/// A New York wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalDateTime {
    /// Local date as days since 1970-01-01.
    pub day: i64,
    pub year: i64,
    pub month: u32,
    pub day_of_month: u32,
    /// Nanoseconds after local midnight.
    pub ns_of_day: i64,
    pub utc_offset_s: i32,
}

impl LocalDateTime {
    pub const fn hour(&self) -> u32 {
        (self.ns_of_day / NS_PER_HOUR) as u32
    }
    pub const fn minute(&self) -> u32 {
        (self.ns_of_day / NS_PER_MINUTE % 60) as u32
    }
    pub const fn second(&self) -> u32 {
        (self.ns_of_day / NS_PER_SEC % 60) as u32
    }
    /// Whole minutes after local midnight.
    pub const fn minute_of_day(&self) -> u32 {
        (self.ns_of_day / NS_PER_MINUTE) as u32
    }
    /// 0 Sunday ... 6 Saturday.
    pub const fn weekday(&self) -> u32 {
        weekday(self.day)
    }
}

/// New York wall time of a UTC instant.
pub const fn to_new_york(utc_ns: i64) -> LocalDateTime {
    let offset = ny_offset_seconds(utc_ns);
    let local = utc_ns.saturating_add(offset as i64 * NS_PER_SEC);
    let day = local.div_euclid(NS_PER_DAY);
    let (year, month, day_of_month) = civil_from_days(day);
    LocalDateTime {
        day,
        year,
        month,
        day_of_month,
        ns_of_day: local.rem_euclid(NS_PER_DAY),
        utc_offset_s: offset,
    }
}

/// Minutes after New York midnight at which the CME Globex day starts:
/// trades from 18:00 on belong to the next trading date.
pub const GLOBEX_OPEN_MINUTE: u32 = 18 * 60;

/// The CME trading date of a UTC instant, as days since 1970-01-01: the New
/// York calendar date, or the next one from 18:00 New York on. The one rule
/// for the dates `nq-eval --from/--to`, `nq-data split` and the checkpoints'
/// recorded training dates use.
pub const fn trading_day(utc_ns: i64) -> i64 {
    let local = to_new_york(utc_ns);
    if local.minute_of_day() >= GLOBEX_OPEN_MINUTE {
        local.day.saturating_add(1)
    } else {
        local.day
    }
}

/// UTC instant of a New York wall time (`day` as days since 1970-01-01,
/// `minute_of_day` may be 0..=1440). Resolves like Python's `fold=0`: an
/// ambiguous time (the repeated autumn hour) gives the earlier instant, a
/// non-existent one (the spring gap) is read with the offset in force before
/// the gap.
pub const fn new_york_to_utc(day: i64, minute_of_day: u32) -> i64 {
    let local = day
        .saturating_mul(NS_PER_DAY)
        .saturating_add(minute_of_day as i64 * NS_PER_MINUTE);
    let as_edt = local.saturating_sub(EDT_OFFSET_S as i64 * NS_PER_SEC);
    if ny_offset_seconds(as_edt) == EDT_OFFSET_S {
        return as_edt;
    }
    local.saturating_sub(EST_OFFSET_S as i64 * NS_PER_SEC)
}

/// One trading session: `[start_ns, end_ns)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Session {
    /// The local date on which the session ends, as days since 1970-01-01.
    /// Unique per session and increasing with time.
    pub id: i64,
    pub start_ns: i64,
    pub end_ns: i64,
}

impl Session {
    pub const fn contains(&self, ts_ns: i64) -> bool {
        ts_ns >= self.start_ns && ts_ns < self.end_ns
    }

    /// Length in nanoseconds. A session spanning a DST change at 02:00 local
    /// is an hour shorter or longer than [`SessionHours::minutes`] says.
    pub const fn duration_ns(&self) -> i64 {
        self.end_ns.saturating_sub(self.start_ns)
    }

    /// Whole minutes since the session start (0 before it).
    pub const fn minute_of(&self, ts_ns: i64) -> i64 {
        let elapsed = ts_ns.saturating_sub(self.start_ns);
        if elapsed <= 0 {
            0
        } else {
            elapsed / NS_PER_MINUTE
        }
    }

    /// Elapsed fraction of the session at `ts_ns`, clamped to `[0, 1]`.
    pub fn elapsed_fraction(&self, ts_ns: i64) -> f64 {
        let duration = self.duration_ns();
        if duration <= 0 {
            return 1.0;
        }
        let elapsed = ts_ns.saturating_sub(self.start_ns) as f64 / duration as f64;
        elapsed.clamp(0.0, 1.0)
    }

    /// Remaining fraction of the session at `ts_ns`, `1 - elapsed`.
    pub fn remaining_fraction(&self, ts_ns: i64) -> f64 {
        1.0 - self.elapsed_fraction(ts_ns)
    }

    /// Whether the bar starting at `bar_start_ns` and lasting `bar_ns` is the
    /// last one of the session: it ends at or after the session end.
    pub const fn is_last_bar(&self, bar_start_ns: i64, bar_ns: i64) -> bool {
        bar_start_ns.saturating_add(bar_ns) >= self.end_ns
    }

    /// Bars of `bar_ns` in the session (at least 1).
    pub const fn bar_count(&self, bar_ns: i64) -> i64 {
        if bar_ns <= 0 {
            return 1;
        }
        let n = self.duration_ns() / bar_ns;
        if n < 1 {
            1
        } else {
            n
        }
    }
}

/// Maps UTC instants to the sessions of one [`SessionHours`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCalendar {
    pub hours: SessionHours,
}

impl SessionCalendar {
    pub const fn new(hours: SessionHours) -> SessionCalendar {
        SessionCalendar { hours }
    }

    /// The session that ends on local date `day` (days since 1970-01-01).
    pub const fn session_ending_on(&self, day: i64) -> Session {
        let start_day = if self.hours.crosses_midnight() {
            day.saturating_sub(1)
        } else {
            day
        };
        Session {
            id: day,
            start_ns: new_york_to_utc(start_day, self.hours.start_minute as u32),
            end_ns: new_york_to_utc(day, self.hours.end_minute as u32),
        }
    }

    /// The session containing `ts_ns`, if any.
    pub const fn session_at(&self, ts_ns: i64) -> Option<Session> {
        let day = to_new_york(ts_ns).day;
        let today = self.session_ending_on(day);
        if today.contains(ts_ns) {
            return Some(today);
        }
        if self.hours.crosses_midnight() {
            let tomorrow = self.session_ending_on(day.saturating_add(1));
            if tomorrow.contains(ts_ns) {
                return Some(tomorrow);
            }
        }
        None
    }

    /// The latest session that started at or before `ts_ns` (it may have
    /// ended already). Every instant has one, which makes it the anchor for
    /// per-session state such as the session VWAP.
    pub const fn anchor_session(&self, ts_ns: i64) -> Session {
        let day = to_new_york(ts_ns).day;
        let tomorrow = self.session_ending_on(day.saturating_add(1));
        if tomorrow.start_ns <= ts_ns {
            return tomorrow;
        }
        let today = self.session_ending_on(day);
        if today.start_ns <= ts_ns {
            return today;
        }
        self.session_ending_on(day.saturating_sub(1))
    }

    /// The first session that starts after `session`.
    pub const fn next_session(&self, session: &Session) -> Session {
        self.session_ending_on(session.id.saturating_add(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_five_centuries() {
        let start = days_from_civil(1800, 1, 1);
        let end = days_from_civil(2300, 1, 1);
        let mut expected = (1800, 1, 1);
        for d in start..end {
            let c = civil_from_days(d);
            assert_eq!(c, expected, "day {d}");
            assert_eq!(days_from_civil(c.0, c.1, c.2), d);
            let month_len = match c.1 {
                2 if (c.0 % 4 == 0 && c.0 % 100 != 0) || c.0 % 400 == 0 => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            expected = if c.2 < month_len {
                (c.0, c.1, c.2 + 1)
            } else if c.1 < 12 {
                (c.0, c.1 + 1, 1)
            } else {
                (c.0 + 1, 1, 1)
            };
        }
    }

    #[test]
    fn known_weekdays() {
        assert_eq!(weekday(0), 4);
        // 2023-11-19 was a Sunday.
        assert_eq!(weekday(days_from_civil(2023, 11, 19)), 0);
    }

    #[test]
    fn extreme_timestamps_do_not_panic() {
        let cal = SessionCalendar::new(SessionHours::GLOBEX);
        for t in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let _ = to_new_york(t);
            let _ = cal.session_at(t);
            let s = cal.anchor_session(t);
            let _ = s.elapsed_fraction(t);
            let _ = cal.next_session(&s);
        }
    }
}
