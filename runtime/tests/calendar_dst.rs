//! The New York calendar against Python's zoneinfo at every DST transition
//! 1990-2035 (`fixtures/dst/make_dst_fixture.py` wrote the fixture), and the
//! session rules on the days around them.

use nq_formats::SessionHours;
use nq_runtime::calendar::{
    days_from_civil, new_york_to_utc, to_new_york, SessionCalendar, NS_PER_HOUR, NS_PER_MINUTE,
};

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/dst/ny_dst_1990_2035.csv"
));

struct Row<'a> {
    line: usize,
    kind: &'a str,
    utc_ns: i64,
    local: &'a str,
    offset_s: i32,
}

fn rows() -> impl Iterator<Item = Row<'static>> {
    FIXTURE.lines().enumerate().skip(1).map(|(i, line)| {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4, "fixture line {}: {line}", i + 1);
        Row {
            line: i + 1,
            kind: f[0],
            utc_ns: f[1].parse().unwrap(),
            local: f[2],
            offset_s: f[3].parse().unwrap(),
        }
    })
}

/// `YYYY-MM-DDTHH:MM:SS` -> (local day number, minute of day, second).
fn parse_local(s: &str) -> (i64, u32, u32) {
    let n = |a: usize, b: usize| s[a..b].parse::<u32>().unwrap();
    let day = days_from_civil(n(0, 4) as i64, n(5, 7), n(8, 10));
    (day, n(11, 13) * 60 + n(14, 16), n(17, 19))
}

fn format_local(utc_ns: i64) -> String {
    let t = to_new_york(utc_ns);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year,
        t.month,
        t.day_of_month,
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[test]
fn every_fixture_row_matches_zoneinfo() {
    let mut checked = [0usize; 3];
    for r in rows() {
        match r.kind {
            "transition" | "near" | "sample" => {
                let t = to_new_york(r.utc_ns);
                assert_eq!(t.utc_offset_s, r.offset_s, "line {}: offset", r.line);
                assert_eq!(format_local(r.utc_ns), r.local, "line {}: local", r.line);
                checked[0] += 1;
            }
            "local" => {
                let (day, minute, _) = parse_local(r.local);
                assert_eq!(
                    new_york_to_utc(day, minute),
                    r.utc_ns,
                    "line {}: {} -> UTC",
                    r.line,
                    r.local
                );
                checked[1] += 1;
            }
            other => panic!("line {}: unknown kind {other}", r.line),
        }
        if r.kind == "transition" {
            checked[2] += 1;
        }
    }
    // 46 years x 2 transitions.
    assert_eq!(checked[2], 92);
    assert!(checked[0] > 900 && checked[1] > 1500, "{checked:?}");
}

#[test]
fn transitions_are_exactly_where_the_fixture_says() {
    for r in rows().filter(|r| r.kind == "transition") {
        let before = to_new_york(r.utc_ns - 1).utc_offset_s;
        let after = to_new_york(r.utc_ns).utc_offset_s;
        assert_ne!(before, after, "line {}", r.line);
        assert_eq!(after, r.offset_s, "line {}", r.line);
    }
}

fn ns_of(y: i64, m: u32, d: u32, hh: i64, mm: i64, offset_h: i64) -> i64 {
    days_from_civil(y, m, d) * 24 * NS_PER_HOUR + (hh - offset_h) * NS_PER_HOUR + mm * NS_PER_MINUTE
}

#[test]
fn rth_sessions_follow_dst() {
    let cal = SessionCalendar::new(SessionHours::RTH);
    // 2024-03-08 (Fri, EST) and 2024-03-11 (Mon, EDT) around the spring change.
    let fri = cal.session_ending_on(days_from_civil(2024, 3, 8));
    assert_eq!(fri.start_ns, ns_of(2024, 3, 8, 9, 30, -5));
    assert_eq!(fri.end_ns, ns_of(2024, 3, 8, 16, 0, -5));
    let mon = cal.session_ending_on(days_from_civil(2024, 3, 11));
    assert_eq!(mon.start_ns, ns_of(2024, 3, 11, 9, 30, -4));
    assert_eq!(mon.end_ns - mon.start_ns, 390 * NS_PER_MINUTE);
    assert_eq!(cal.session_at(mon.start_ns), Some(mon));
    assert_eq!(cal.session_at(mon.start_ns - 1), None);
    assert_eq!(cal.session_at(mon.end_ns), None);
    assert_eq!(cal.session_at(mon.end_ns - 1), Some(mon));
    assert_eq!(mon.minute_of(mon.start_ns + 61 * NS_PER_MINUTE), 61);
    // Between sessions the anchor is the one that last started.
    assert_eq!(
        cal.anchor_session(mon.start_ns - 1).id,
        days_from_civil(2024, 3, 10)
    );
    assert_eq!(cal.anchor_session(mon.end_ns + NS_PER_HOUR), mon);
    assert_eq!(cal.anchor_session(mon.start_ns), mon);
}

#[test]
fn sunday_evening_globex_bar_belongs_to_monday() {
    let cal = SessionCalendar::new(SessionHours::GLOBEX);
    // Sunday 2023-11-19 18:00 EST = 23:00 UTC: first bar of the real data set.
    let t = 1_700_434_800_000_000_000;
    let s = cal.session_at(t).unwrap();
    assert_eq!(s.id, days_from_civil(2023, 11, 20));
    assert_eq!(s.start_ns, t);
    assert_eq!(s.end_ns, ns_of(2023, 11, 20, 17, 0, -5));
    assert_eq!(s.duration_ns(), 23 * NS_PER_HOUR);
    assert_eq!(s.bar_count(60_000_000_000), 23 * 60);
    // The daily break 17:00-18:00 is in no session.
    assert_eq!(cal.session_at(s.end_ns), None);
    assert_eq!(cal.session_at(s.end_ns + 59 * NS_PER_MINUTE), None);
    assert_eq!(cal.session_at(s.end_ns + NS_PER_HOUR).unwrap().id, s.id + 1);
    // 16:59 is the last 1-minute bar; 16:58 is not.
    let last = s.end_ns - NS_PER_MINUTE;
    assert!(s.is_last_bar(last, NS_PER_MINUTE));
    assert!(!s.is_last_bar(last - NS_PER_MINUTE, NS_PER_MINUTE));
    assert!(s.is_last_bar(s.end_ns - 5 * NS_PER_MINUTE, 5 * NS_PER_MINUTE));
    assert_eq!(s.elapsed_fraction(s.start_ns), 0.0);
    assert_eq!(s.remaining_fraction(s.end_ns), 0.0);
    assert!((s.elapsed_fraction(s.start_ns + 23 * NS_PER_HOUR / 4) - 0.25).abs() < 1e-12);
}

#[test]
fn globex_session_across_each_transition_has_the_dst_length() {
    // The Globex session containing a DST change (Sat 18:00 -> Sun 17:00)
    // is an hour shorter in spring and an hour longer in autumn.
    let cal = SessionCalendar::new(SessionHours::GLOBEX);
    for r in rows().filter(|r| r.kind == "transition") {
        let s = cal
            .session_at(r.utc_ns)
            .expect("transitions are at 02:00, inside Globex");
        let expected = if r.offset_s == -4 * 3600 { 22 } else { 24 };
        assert_eq!(s.duration_ns(), expected * NS_PER_HOUR, "line {}", r.line);
        // Sessions tile time without overlap: the next starts an hour after this ends.
        assert_eq!(cal.next_session(&s).start_ns, s.end_ns + NS_PER_HOUR);
    }
}

#[test]
fn session_lookup_is_consistent_minute_by_minute_across_transitions() {
    for hours in [
        SessionHours::RTH,
        SessionHours::GLOBEX,
        SessionHours::parse("22:00-03:00").unwrap(),
    ] {
        let cal = SessionCalendar::new(hours);
        for r in rows().filter(|r| r.kind == "transition") {
            let mut t = r.utc_ns - 3 * 24 * NS_PER_HOUR;
            let mut prev_anchor = cal.anchor_session(t);
            while t < r.utc_ns + 3 * 24 * NS_PER_HOUR {
                let anchor = cal.anchor_session(t);
                assert!(anchor.start_ns <= t && anchor.id >= prev_anchor.id);
                assert!(cal.next_session(&anchor).start_ns > t);
                match cal.session_at(t) {
                    Some(s) => assert_eq!(s, anchor),
                    None => assert!(t >= anchor.end_ns),
                }
                prev_anchor = anchor;
                t += 15 * NS_PER_MINUTE;
            }
        }
    }
}
