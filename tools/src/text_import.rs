//! Text market data (CSV and NinjaTrader exports) to ticks and bars, with nom.
//!
//! Layouts ([`TextFormat`]):
//! - `csv-ticks`: `time,price,size[,side]`, e.g. `ts_utc_ns,price,size,side`;
//! - `csv-bars`: `time,open,high,low,close,volume`, e.g. `ts_utc_ns,...` or
//!   `timestamp,open,high,low,close,volume`;
//! - `ninja-ticks`: NinjaTrader tick export `yyyyMMdd HHmmss fffffff;last;bid;ask;volume`
//!   (the aggressor side is inferred: last at or above the ask is a buy, at or
//!   below the bid a sell);
//! - `ninja-minutes`: NinjaTrader minute export `yyyyMMdd HHmmss;open;high;low;close;volume`.
//!   NinjaTrader stamps a bar with its *end*; nq stamps bars with their start,
//!   so the bar length (default 60 s) is subtracted.
//!
//! Times in CSV are integer epochs (unit from the magnitude: below 1e11
//! seconds, 1e14 milliseconds, 1e17 microseconds, else nanoseconds) or text
//! `YYYY-MM-DD HH:MM[:SS[.fraction]]` (`/` or `-` between date parts, space or
//! `T` before the time) with an optional `Z` or `+HH:MM` offset. Text times
//! without an offset, and NinjaTrader times, are local times in `--tz` (default
//! UTC). Where a fall-back hour repeats, the earlier (daylight) reading is used
//! unless that would put the line before the previous one, then the later; a
//! time skipped by a spring-forward change is an error.
//!
//! A first line that does not parse as data is taken as a header. Lines are
//! parsed straight from the byte buffer without allocation.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use chrono::{NaiveDate, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;
use nom::bytes::complete::take_while;
use nom::character::complete::char as ch;
use nom::combinator::{opt, rest};
use nom::{IResult, Parser};
use nq_formats::market::NS_PER_SEC;
use nq_formats::{Bar, Side, Tick};

use crate::error::{Error, Result};
use crate::market_data::{BarWriter, DataKind, TickWriter};

/// A text layout; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextFormat {
    CsvTicks,
    CsvBars,
    NinjaTicks,
    NinjaMinutes,
}

impl TextFormat {
    pub const ALL: [TextFormat; 4] = [
        TextFormat::CsvTicks,
        TextFormat::CsvBars,
        TextFormat::NinjaTicks,
        TextFormat::NinjaMinutes,
    ];

    /// The name used by `--format`.
    pub fn name(self) -> &'static str {
        match self {
            TextFormat::CsvTicks => "csv-ticks",
            TextFormat::CsvBars => "csv-bars",
            TextFormat::NinjaTicks => "ninja-ticks",
            TextFormat::NinjaMinutes => "ninja-minutes",
        }
    }

    pub fn from_name(name: &str) -> Option<TextFormat> {
        TextFormat::ALL.into_iter().find(|f| f.name() == name)
    }

    pub fn kind(self) -> DataKind {
        match self {
            TextFormat::CsvTicks | TextFormat::NinjaTicks => DataKind::Ticks,
            TextFormat::CsvBars | TextFormat::NinjaMinutes => DataKind::Bars,
        }
    }

    /// What one line looks like, for error messages.
    pub fn layout(self) -> &'static str {
        match self {
            TextFormat::CsvTicks => "time,price,size[,side]",
            TextFormat::CsvBars => "time,open,high,low,close,volume",
            TextFormat::NinjaTicks => "yyyyMMdd HHmmss fffffff;last;bid;ask;volume",
            TextFormat::NinjaMinutes => "yyyyMMdd HHmmss;open;high;low;close;volume",
        }
    }

    fn delimiter(self) -> u8 {
        match self {
            TextFormat::CsvTicks | TextFormat::CsvBars => b',',
            TextFormat::NinjaTicks | TextFormat::NinjaMinutes => b';',
        }
    }

    fn field_names(self) -> &'static [&'static str] {
        match self {
            TextFormat::CsvTicks => &["time", "price", "size", "side"],
            TextFormat::CsvBars => &["time", "open", "high", "low", "close", "volume"],
            TextFormat::NinjaTicks => &["time", "last", "bid", "ask", "volume"],
            TextFormat::NinjaMinutes => &["time", "open", "high", "low", "close", "volume"],
        }
    }
}

impl std::fmt::Display for TextFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to read a text file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// `None`: detect from the first lines.
    pub format: Option<TextFormat>,
    /// Time zone of times written without an offset.
    pub tz: Tz,
    /// Skip and count malformed lines instead of failing on the first.
    pub skip_bad: bool,
    /// Length of NinjaTrader minute bars, subtracted from their end stamps.
    pub ninja_bar_seconds: i64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            format: None,
            tz: Tz::UTC,
            skip_bad: false,
            ninja_bar_seconds: 60,
        }
    }
}

/// What an import read.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportReport {
    pub format: TextFormat,
    /// Lines seen, header included.
    pub lines: u64,
    /// Records produced.
    pub records: u64,
    /// Malformed lines skipped (only with `skip_bad`).
    pub skipped: u64,
    /// The first skipped line's problem, for the user to look at.
    pub first_skipped: Option<String>,
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

/// A chunk of parsed records handed to the sink.
#[derive(Debug, Clone, Copy)]
pub enum Records<'a> {
    Ticks(&'a [Tick]),
    Bars(&'a [Bar]),
}

/// Guesses the layout from the start of a file: NinjaTrader lines by their
/// `yyyyMMdd HHmmss` start and `;` separators, CSV by the number of fields on
/// the first data line.
pub fn detect_format(head: &[u8]) -> Option<TextFormat> {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(trim_line)
        .filter(|l| !l.is_empty());
    let first = lines.next()?;
    let ninja_date = |l: &[u8]| {
        l.len() >= 15
            && l[..8].iter().all(u8::is_ascii_digit)
            && l[8] == b' '
            && l[9..15].iter().all(u8::is_ascii_digit)
    };
    for line in [Some(first), lines.next()].into_iter().flatten() {
        if ninja_date(line) && line.contains(&b';') {
            return Some(if line.get(15) == Some(&b' ') {
                TextFormat::NinjaTicks
            } else {
                TextFormat::NinjaMinutes
            });
        }
    }
    match first.iter().filter(|&&b| b == b',').count() + 1 {
        3 | 4 => Some(TextFormat::CsvTicks),
        6 => Some(TextFormat::CsvBars),
        _ => None,
    }
}

pub(crate) fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    line.trim_ascii()
}

// ---------- nom field parsers ----------

pub(crate) type Res<'a, T> = IResult<&'a [u8], T>;

fn fail(i: &[u8]) -> nom::Err<nom::error::Error<&[u8]>> {
    nom::Err::Error(nom::error::Error::new(i, nom::error::ErrorKind::Verify))
}

/// Exactly `n` ASCII digits as a number.
fn fixed_digits(n: usize) -> impl Fn(&[u8]) -> Res<'_, u32> {
    move |i: &[u8]| {
        if i.len() < n || !i[..n].iter().all(u8::is_ascii_digit) {
            return Err(fail(i));
        }
        let v = i[..n]
            .iter()
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
        Ok((&i[n..], v))
    }
}

/// An optionally signed integer that fits i64.
pub(crate) fn integer(i: &[u8]) -> Res<'_, i64> {
    let (i, neg) = opt(ch('-')).parse(i)?;
    let (rest, digits) = take_while(|b: u8| b.is_ascii_digit()).parse(i)?;
    if digits.is_empty() || digits.len() > 19 {
        return Err(fail(i));
    }
    let mut v: i64 = 0;
    for d in digits {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(d - b'0')))
            .ok_or_else(|| fail(i))?;
    }
    Ok((rest, if neg.is_some() { -v } else { v }))
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// A decimal number `[-+]digits[.digits][e[-+]digits]`, correctly rounded.
/// Short decimals (all prices and sizes) take an exact fast path: a mantissa
/// below 2^53 divided by an exact power of ten rounds once, so the result is
/// the nearest double; anything longer goes to the standard library parser.
pub(crate) fn decimal(input: &[u8]) -> Res<'_, f64> {
    let mut i = 0;
    let bytes = input;
    let neg = matches!(bytes.first(), Some(b'-'));
    if matches!(bytes.first(), Some(b'-' | b'+')) {
        i += 1;
    }
    let mut mantissa: u64 = 0;
    let mut digits = 0usize;
    let int_start = i;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        mantissa = mantissa
            .wrapping_mul(10)
            .wrapping_add(u64::from(bytes[i] - b'0'));
        i += 1;
    }
    digits += i - int_start;
    let mut frac_digits = 0usize;
    if i < bytes.len() && bytes[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            mantissa = mantissa
                .wrapping_mul(10)
                .wrapping_add(u64::from(bytes[i] - b'0'));
            i += 1;
        }
        frac_digits = i - frac_start;
        digits += frac_digits;
    }
    if digits == 0 {
        return Err(fail(input));
    }
    let has_exponent = i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E');
    if !has_exponent && digits <= 15 && frac_digits < POW10.len() {
        let v = mantissa as f64 / POW10[frac_digits];
        return Ok((&input[i..], if neg { -v } else { v }));
    }
    if has_exponent {
        i += 1;
        if i < bytes.len() && (bytes[i] == b'-' || bytes[i] == b'+') {
            i += 1;
        }
        let exp_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return Err(fail(input));
        }
    }
    let text = std::str::from_utf8(&input[..i]).map_err(|_| fail(input))?;
    let v: f64 = text.parse().map_err(|_| fail(input))?;
    Ok((&input[i..], v))
}

/// `HH:MM[:SS[.fraction]]` as nanoseconds after midnight.
fn clock_time(i: &[u8]) -> Res<'_, i64> {
    let (i, h) = fixed_digits(2)(i)?;
    let (i, _) = ch(':').parse(i)?;
    let (i, m) = fixed_digits(2)(i)?;
    let (i, s) = opt((ch(':'), fixed_digits(2)).map(|(_, s)| s)).parse(i)?;
    let (i, frac) =
        opt((ch('.'), take_while(|b: u8| b.is_ascii_digit())).map(|(_, f)| f)).parse(i)?;
    if h > 23 || m > 59 || s.unwrap_or(0) > 60 {
        return Err(fail(i));
    }
    let ns = fraction_ns(frac.unwrap_or(b""));
    Ok((
        i,
        (i64::from(h) * 3600 + i64::from(m) * 60 + i64::from(s.unwrap_or(0))) * NS_PER_SEC + ns,
    ))
}

/// Digits after the decimal point as nanoseconds (beyond 9 digits truncated).
fn fraction_ns(digits: &[u8]) -> i64 {
    let mut ns = 0i64;
    for k in 0..9 {
        ns = ns * 10 + digits.get(k).map_or(0, |d| i64::from(d - b'0'));
    }
    ns
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm: exact and branch-light, much faster than a calendar library per
/// line).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn valid_date(y: u32, m: u32, d: u32) -> bool {
    NaiveDate::from_ymd_opt(y as i32, m, d).is_some()
}

/// Where a text time sits: an exact instant, or a local time to be placed in
/// the import's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stamp {
    /// UTC nanoseconds.
    Utc(i64),
    /// Nanoseconds since 1970-01-01 00:00 of the local wall clock.
    Local(i64),
}

/// `YYYY-MM-DD HH:MM[:SS[.f]]` (or `/`, or `T`) with an optional `Z`/`±HH:MM`.
fn datetime(i: &[u8]) -> Res<'_, Stamp> {
    let (i, y) = fixed_digits(4)(i)?;
    let (i, sep) = nom::character::complete::one_of("-/").parse(i)?;
    let (i, mo) = fixed_digits(2)(i)?;
    let (i, _) = ch(sep).parse(i)?;
    let (i, d) = fixed_digits(2)(i)?;
    let (i, _) = nom::character::complete::one_of(" T").parse(i)?;
    let (i, tod) = clock_time(i)?;
    if !valid_date(y, mo, d) {
        return Err(fail(i));
    }
    let local = days_from_civil(i64::from(y), mo, d) * 86_400 * NS_PER_SEC + tod;
    if let Ok((i, _)) = ch::<_, nom::error::Error<&[u8]>>('Z').parse(i) {
        return Ok((i, Stamp::Utc(local)));
    }
    if let Ok((i, (sign, hh, _, mm))) = (
        nom::character::complete::one_of::<_, _, nom::error::Error<&[u8]>>("+-"),
        fixed_digits(2),
        opt(ch(':')),
        fixed_digits(2),
    )
        .parse(i)
    {
        let off = (i64::from(hh) * 3600 + i64::from(mm) * 60) * NS_PER_SEC;
        let utc = if sign == '+' {
            local - off
        } else {
            local + off
        };
        return Ok((i, Stamp::Utc(utc)));
    }
    Ok((i, Stamp::Local(local)))
}

/// An integer epoch: nanoseconds per unit from the header's name (`ts_utc_ns`,
/// `time_ms`, ...) or, when the header does not say, inferred from the magnitude.
fn epoch(unit_ns: Option<i64>) -> impl Fn(&[u8]) -> Res<'_, Stamp> {
    move |i: &[u8]| {
        let (rest, v) = integer(i)?;
        let a = v.unsigned_abs();
        let mult = unit_ns.unwrap_or(if a < 100_000_000_000 {
            NS_PER_SEC
        } else if a < 100_000_000_000_000 {
            1_000_000
        } else if a < 100_000_000_000_000_000 {
            1_000
        } else {
            1
        });
        v.checked_mul(mult)
            .map(|ns| (rest, Stamp::Utc(ns)))
            .ok_or_else(|| fail(i))
    }
}

/// A CSV time field: text date-time or integer epoch, up to the delimiter.
fn csv_time(unit_ns: Option<i64>) -> impl Fn(&[u8]) -> Res<'_, Stamp> {
    move |i: &[u8]| {
        if i.len() > 4 && i[..4].iter().all(u8::is_ascii_digit) && matches!(i[4], b'-' | b'/') {
            datetime(i)
        } else {
            epoch(unit_ns)(i)
        }
    }
}

/// The epoch unit a header names in its first column (`ts_utc_ns`, `time_ms`,
/// `timestamp_us`, `epoch_s`), in nanoseconds.
fn header_epoch_unit(header: &[u8]) -> Option<i64> {
    let first = header
        .split(|&b| b == b',' || b == b';')
        .next()?
        .trim_ascii();
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    let suffix = name.rsplit(['_', ' ']).next().unwrap_or("");
    match suffix {
        "ns" | "nanos" => Some(1),
        "us" | "micros" => Some(1_000),
        "ms" | "millis" => Some(1_000_000),
        "s" | "sec" | "secs" | "seconds" => Some(NS_PER_SEC),
        _ => None,
    }
}

/// NinjaTrader `yyyyMMdd HHmmss[ fffffff]` (local time).
fn ninja_time(with_fraction: bool) -> impl Fn(&[u8]) -> Res<'_, Stamp> {
    move |i: &[u8]| {
        let (i, y) = fixed_digits(4)(i)?;
        let (i, mo) = fixed_digits(2)(i)?;
        let (i, d) = fixed_digits(2)(i)?;
        let (i, _) = ch(' ').parse(i)?;
        let (i, h) = fixed_digits(2)(i)?;
        let (i, mi) = fixed_digits(2)(i)?;
        let (i, s) = fixed_digits(2)(i)?;
        let (i, frac) = if with_fraction {
            let (i, _) = ch(' ').parse(i)?;
            let (i, f) = fixed_digits(7)(i)?;
            (i, i64::from(f) * 100)
        } else {
            (i, 0)
        };
        if !valid_date(y, mo, d) || h > 23 || mi > 59 || s > 60 {
            return Err(fail(i));
        }
        let secs = days_from_civil(i64::from(y), mo, d) * 86_400
            + i64::from(h) * 3600
            + i64::from(mi) * 60
            + i64::from(s);
        Ok((i, Stamp::Local(secs * NS_PER_SEC + frac)))
    }
}

pub(crate) fn side_field(i: &[u8]) -> Res<'_, Side> {
    let (i, text) = rest(i)?;
    let text = text.trim_ascii();
    let side = match text {
        b"" | b"N" | b"n" => Side::None,
        b"B" | b"b" | b"1" => Side::Buy,
        b"A" | b"a" | b"S" | b"s" | b"-1" | b"2" => Side::Sell,
        _ => return Err(fail(text)),
    };
    Ok((i, side))
}

/// A parsed line before time-zone resolution.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Line {
    Tick {
        stamp: Stamp,
        price: f64,
        size: f64,
        side: Side,
    },
    Bar {
        stamp: Stamp,
        ohlc: [f64; 4],
        volume: f64,
    },
}

fn end(i: &[u8]) -> Res<'_, ()> {
    if i.is_empty() {
        Ok((i, ()))
    } else {
        Err(fail(i))
    }
}

fn parse_line(format: TextFormat, line: &[u8], unit_ns: Option<i64>) -> Res<'_, Line> {
    let c = || ch(',');
    let s = || ch(';');
    match format {
        TextFormat::CsvTicks => {
            let (i, (stamp, _, price, _, size)) =
                (csv_time(unit_ns), c(), decimal, c(), decimal).parse(line)?;
            let (i, side) = if i.is_empty() {
                (i, Side::None)
            } else {
                let (i, _) = c().parse(i)?;
                side_field(i)?
            };
            Ok((
                i,
                Line::Tick {
                    stamp,
                    price,
                    size,
                    side,
                },
            ))
        }
        TextFormat::CsvBars => {
            let (i, (stamp, _, o, _, h, _, l, _, cl, _, v, _)) = (
                csv_time(unit_ns),
                c(),
                decimal,
                c(),
                decimal,
                c(),
                decimal,
                c(),
                decimal,
                c(),
                decimal,
                end,
            )
                .parse(line)?;
            Ok((
                i,
                Line::Bar {
                    stamp,
                    ohlc: [o, h, l, cl],
                    volume: v,
                },
            ))
        }
        TextFormat::NinjaTicks => {
            let (i, (stamp, _, last, _, bid, _, ask, _, v, _)) = (
                ninja_time(true),
                s(),
                decimal,
                s(),
                decimal,
                s(),
                decimal,
                s(),
                decimal,
                end,
            )
                .parse(line)?;
            let side = if last >= ask && ask > 0.0 {
                Side::Buy
            } else if last <= bid && bid > 0.0 {
                Side::Sell
            } else {
                Side::None
            };
            Ok((
                i,
                Line::Tick {
                    stamp,
                    price: last,
                    size: v,
                    side,
                },
            ))
        }
        TextFormat::NinjaMinutes => {
            let (i, (stamp, _, o, _, h, _, l, _, cl, _, v, _)) = (
                ninja_time(false),
                s(),
                decimal,
                s(),
                decimal,
                s(),
                decimal,
                s(),
                decimal,
                s(),
                decimal,
                end,
            )
                .parse(line)?;
            Ok((
                i,
                Line::Bar {
                    stamp,
                    ohlc: [o, h, l, cl],
                    volume: v,
                },
            ))
        }
    }
}

/// Says which field of a line failed to parse, from where the parser stopped.
fn describe_parse_failure(format: TextFormat, line: &[u8], stopped_at: &[u8]) -> String {
    let delim = format.delimiter();
    let names = format.field_names();
    let fields = line.iter().filter(|&&b| b == delim).count() + 1;
    // csv-ticks has an optional last field (side).
    let fewest = if format == TextFormat::CsvTicks {
        names.len() - 1
    } else {
        names.len()
    };
    if fields < fewest || fields > names.len() {
        return format!(
            "{fields} fields where `{}` has {}",
            format.layout(),
            names.len()
        );
    }
    let offset = line.len().saturating_sub(stopped_at.len());
    let field = line[..offset].iter().filter(|&&b| b == delim).count();
    let text = line.split(|&b| b == delim).nth(field).unwrap_or(b"");
    let shown = String::from_utf8_lossy(&text[..text.len().min(40)]);
    let name = names.get(field).copied().unwrap_or("?");
    format!(
        "field {} ({name}) {shown:?} cannot be read; expected `{}`",
        field + 1,
        format.layout()
    )
}

// ---------- time zones ----------

/// Places local wall-clock times in a time zone, caching the offset of the
/// current local hour (zone rules change on hour boundaries in the zones
/// futures trade in; an hour whose start and end disagree is not cached).
struct ZoneMapper {
    tz: Tz,
    cached_hour: i64,
    cached_offset_ns: Option<i64>,
}

enum Placed {
    At(i64),
    /// Two readings (daylight first).
    Ambiguous(i64, i64),
    Missing,
}

impl ZoneMapper {
    fn new(tz: Tz) -> Self {
        ZoneMapper {
            tz,
            cached_hour: i64::MIN,
            cached_offset_ns: None,
        }
    }

    fn place(&mut self, local_ns: i64) -> Placed {
        if self.tz == Tz::UTC {
            return Placed::At(local_ns);
        }
        let hour = local_ns.div_euclid(3600 * NS_PER_SEC);
        if hour == self.cached_hour {
            if let Some(off) = self.cached_offset_ns {
                return Placed::At(local_ns - off);
            }
        }
        let offsets_at = |ns: i64| -> Vec<i64> {
            let secs = ns.div_euclid(NS_PER_SEC);
            let Some(naive) = chrono::DateTime::from_timestamp(secs, 0).map(|d| d.naive_utc())
            else {
                return Vec::new();
            };
            offsets(&self.tz, &naive)
        };
        let here = offsets_at(local_ns);
        let hour_start = offsets_at(hour * 3600 * NS_PER_SEC);
        let hour_end = offsets_at((hour * 3600 + 3599) * NS_PER_SEC);
        self.cached_hour = hour;
        self.cached_offset_ns = match (&hour_start[..], &hour_end[..]) {
            ([a], [b]) if a == b => Some(*a),
            _ => None,
        };
        match here[..] {
            [off] => Placed::At(local_ns - off),
            [a, b] => {
                let (x, y) = (local_ns - a, local_ns - b);
                Placed::Ambiguous(x.min(y), x.max(y))
            }
            _ => Placed::Missing,
        }
    }
}

/// The UTC offsets (ns) that a local wall-clock time can have in `tz`.
fn offsets(tz: &Tz, local: &NaiveDateTime) -> Vec<i64> {
    let off = |o: &<Tz as TimeZone>::Offset| i64::from(o.fix().local_minus_utc()) * NS_PER_SEC;
    match tz.offset_from_local_datetime(local) {
        chrono::LocalResult::Single(o) => vec![off(&o)],
        chrono::LocalResult::Ambiguous(a, b) => vec![off(&a), off(&b)],
        chrono::LocalResult::None => Vec::new(),
    }
}

// ---------- driver ----------

const CHUNK_RECORDS: usize = 64 * 1024;
const READ_BLOCK: usize = 4 << 20;

/// Turns lines into validated records, in chunks.
struct LineSink<'f, F> {
    file: &'f Path,
    format: TextFormat,
    opts: ImportOptions,
    zone: ZoneMapper,
    ticks: Vec<Tick>,
    bars: Vec<Bar>,
    last_ts: i64,
    /// Set from a header such as `ts_utc_ns`.
    epoch_unit: Option<i64>,
    report: ImportReport,
    emit: F,
}

impl<F: FnMut(Records<'_>) -> Result<()>> LineSink<'_, F> {
    fn reject(&mut self, line_no: u64, problem: String) -> Result<()> {
        if !self.opts.skip_bad {
            return Err(Error::bad_line(self.file, line_no, problem));
        }
        self.report.skipped += 1;
        if self.report.first_skipped.is_none() {
            self.report.first_skipped = Some(format!("line {line_no}: {problem}"));
        }
        Ok(())
    }

    fn line(&mut self, line_no: u64, raw: &[u8]) -> Result<()> {
        self.report.lines += 1;
        let line = trim_line(raw);
        if line.is_empty() {
            return Ok(());
        }
        let parsed = match parse_line(self.format, line, self.epoch_unit) {
            Ok((_, parsed)) => parsed,
            Err(e) => {
                // The first line that is not data is the header.
                if line_no == 1 {
                    self.epoch_unit = header_epoch_unit(line);
                    return Ok(());
                }
                let stopped_at = match e {
                    nom::Err::Error(e) | nom::Err::Failure(e) => e.input,
                    nom::Err::Incomplete(_) => line,
                };
                let problem = describe_parse_failure(self.format, line, stopped_at);
                return self.reject(line_no, problem);
            }
        };
        let (stamp, is_bar) = match parsed {
            Line::Tick { stamp, .. } => (stamp, false),
            Line::Bar { stamp, .. } => (stamp, true),
        };
        // Ticks may share a time; a bar start seen twice is the same bar twice.
        let follows_last = |ts: i64| ts > self.last_ts || (!is_bar && ts == self.last_ts);
        let ts = match stamp {
            Stamp::Utc(ts) => ts,
            Stamp::Local(local) => match self.zone.place(local) {
                Placed::At(ts) => ts,
                Placed::Ambiguous(early, late) => {
                    if follows_last(early) {
                        early
                    } else {
                        late
                    }
                }
                Placed::Missing => {
                    let problem = format!(
                        "local time {} does not exist in {} (the clocks skip it)",
                        crate::time::format_ts(local).trim_end_matches('Z'),
                        self.opts.tz
                    );
                    return self.reject(line_no, problem);
                }
            },
        };
        let ts = match parsed {
            Line::Bar { .. } if self.format == TextFormat::NinjaMinutes => {
                ts - self.opts.ninja_bar_seconds * NS_PER_SEC
            }
            _ => ts,
        };
        if !follows_last(ts) {
            let problem = if ts == self.last_ts {
                format!(
                    "duplicate bar: {} is the start of the previous line's bar too",
                    crate::time::format_ts(ts)
                )
            } else {
                format!(
                    "time goes backwards: {} is before the previous line's {}",
                    crate::time::format_ts(ts),
                    crate::time::format_ts(self.last_ts)
                )
            };
            return self.reject(line_no, problem);
        }
        match parsed {
            Line::Tick {
                price, size, side, ..
            } => {
                if let Some(p) = value_problem(price, size) {
                    return self.reject(line_no, p);
                }
                self.ticks.push(Tick {
                    ts_ns: ts,
                    price,
                    size,
                    side,
                });
                if self.ticks.len() >= CHUNK_RECORDS {
                    self.flush()?;
                }
            }
            Line::Bar { ohlc, volume, .. } => {
                let bar = Bar {
                    ts_ns: ts,
                    open: ohlc[0],
                    high: ohlc[1],
                    low: ohlc[2],
                    close: ohlc[3],
                    volume,
                };
                if !bar.is_consistent() {
                    let p = ohlc
                        .iter()
                        .find_map(|&p| value_problem(p, volume))
                        .or_else(|| value_problem(1.0, volume))
                        .unwrap_or_else(|| {
                            format!(
                                "inconsistent bar: low {} and high {} must bracket open {} and close {}",
                                bar.low, bar.high, bar.open, bar.close
                            )
                        });
                    return self.reject(line_no, p);
                }
                self.bars.push(bar);
                if self.bars.len() >= CHUNK_RECORDS {
                    self.flush()?;
                }
            }
        }
        self.last_ts = ts;
        self.report.records += 1;
        if self.report.first_ts.is_none() {
            self.report.first_ts = Some(ts);
        }
        self.report.last_ts = Some(ts);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.ticks.is_empty() {
            (self.emit)(Records::Ticks(&self.ticks))?;
            self.ticks.clear();
        }
        if !self.bars.is_empty() {
            (self.emit)(Records::Bars(&self.bars))?;
            self.bars.clear();
        }
        Ok(())
    }
}

fn value_problem(price: f64, size: f64) -> Option<String> {
    if !(price.is_finite() && price > 0.0) {
        return Some(format!("price {price} is not a finite positive number"));
    }
    if !(size.is_finite() && size >= 0.0) {
        return Some(format!("size {size} is negative or not finite"));
    }
    None
}

/// Parses text from `input` (named `file` in errors), handing records to `emit`
/// in chunks. Memory stays bounded: the input is read in blocks.
pub fn parse_text(
    file: &Path,
    mut input: impl Read,
    opts: &ImportOptions,
    emit: impl FnMut(Records<'_>) -> Result<()>,
) -> Result<ImportReport> {
    let mut buf = vec![0u8; READ_BLOCK];
    let mut filled = read_full(file, &mut input, &mut buf)?;
    let format = match opts.format {
        Some(f) => f,
        None => detect_format(&buf[..filled.min(64 * 1024)]).ok_or_else(|| {
            Error::bad_line(
                file,
                1,
                format!(
                    "cannot tell the layout from the first lines; pass --format ({})",
                    TextFormat::ALL.map(TextFormat::name).join(", ")
                ),
            )
        })?,
    };
    let mut sink = LineSink {
        file,
        format,
        opts: opts.clone(),
        zone: ZoneMapper::new(opts.tz),
        ticks: Vec::with_capacity(if format.kind() == DataKind::Ticks {
            CHUNK_RECORDS
        } else {
            0
        }),
        bars: Vec::with_capacity(if format.kind() == DataKind::Bars {
            CHUNK_RECORDS
        } else {
            0
        }),
        last_ts: i64::MIN,
        epoch_unit: None,
        report: ImportReport {
            format,
            lines: 0,
            records: 0,
            skipped: 0,
            first_skipped: None,
            first_ts: None,
            last_ts: None,
        },
        emit,
    };
    let mut line_no = 0u64;
    loop {
        let at_eof = filled < buf.len();
        let data = &buf[..filled];
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', data) {
            line_no += 1;
            sink.line(line_no, &data[start..nl])?;
            start = nl + 1;
        }
        if at_eof {
            if start < filled {
                line_no += 1;
                sink.line(line_no, &data[start..filled])?;
            }
            break;
        }
        // Keep the unfinished line; grow the buffer if one line fills it.
        buf.copy_within(start..filled, 0);
        let kept = filled - start;
        if kept == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
        filled = kept + read_full(file, &mut input, &mut buf[kept..])?;
        if filled == kept {
            if kept > 0 {
                line_no += 1;
                sink.line(line_no, &buf[..kept])?;
            }
            break;
        }
    }
    sink.flush()?;
    Ok(sink.report)
}

fn read_full(file: &Path, input: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(file, e)),
        }
    }
    Ok(n)
}

/// Parses a whole text buffer into ticks or bars in memory.
pub fn parse_bytes(
    file: &Path,
    bytes: &[u8],
    opts: &ImportOptions,
) -> Result<(ParsedRecords, ImportReport)> {
    let mut ticks = Vec::new();
    let mut bars = Vec::new();
    let report = parse_text(file, bytes, opts, |r| {
        match r {
            Records::Ticks(t) => ticks.extend_from_slice(t),
            Records::Bars(b) => bars.extend_from_slice(b),
        }
        Ok(())
    })?;
    let records = match report.format.kind() {
        DataKind::Ticks => ParsedRecords::Ticks(ticks),
        DataKind::Bars => ParsedRecords::Bars(bars),
    };
    Ok((records, report))
}

/// Records of a whole file.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedRecords {
    Ticks(Vec<Tick>),
    Bars(Vec<Bar>),
}

/// Imports a text file into a Parquet file of ticks or bars (whichever the
/// layout holds). Nothing is left at `output` on error.
pub fn import_file(input: &Path, output: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let file = File::open(input).map_err(|e| Error::io(input, e))?;
    let mut head = [0u8; 64 * 1024];
    let head_len = read_full(input, &mut &file, &mut head)?;
    let format = match opts.format {
        Some(f) => f,
        None => detect_format(&head[..head_len]).ok_or_else(|| {
            Error::bad_line(
                input,
                1,
                format!(
                    "cannot tell the layout from the first lines; pass --format ({})",
                    TextFormat::ALL.map(TextFormat::name).join(", ")
                ),
            )
        })?,
    };
    let opts = ImportOptions {
        format: Some(format),
        ..opts.clone()
    };
    let reader = std::io::Cursor::new(&head[..head_len]).chain(file);
    let report = match format.kind() {
        DataKind::Ticks => {
            let mut w = TickWriter::create(output)?;
            let report = parse_text(input, reader, &opts, |r| match r {
                Records::Ticks(t) => w.write(t),
                Records::Bars(_) => Err(Error::Internal("bars from a tick layout".into())),
            })?;
            w.finish()?;
            report
        }
        DataKind::Bars => {
            let mut w = BarWriter::create(output)?;
            let report = parse_text(input, reader, &opts, |r| match r {
                Records::Bars(b) => w.write(b),
                Records::Ticks(_) => Err(Error::Internal("ticks from a bar layout".into())),
            })?;
            w.finish()?;
            report
        }
    };
    Ok(report)
}

/// Parses a `--tz` name (IANA, e.g. `America/New_York`, or `UTC`).
pub fn parse_tz(name: &str) -> Result<Tz> {
    name.parse::<Tz>().map_err(|_| {
        Error::Usage(format!(
            "unknown time zone {name:?}; use an IANA name such as America/New_York or UTC"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: TextFormat, line: &str) -> Option<Line> {
        parse_line(format, line.as_bytes(), None)
            .ok()
            .map(|(_, l)| l)
    }

    #[test]
    fn decimals_match_std() {
        for s in [
            "0",
            "1",
            "15895.25",
            "-3.5",
            "0.1",
            "4024.750000000",
            "1e3",
            "2.5E-2",
            "+7",
        ] {
            let (rest, v) = decimal(s.as_bytes()).unwrap();
            assert!(rest.is_empty(), "{s}");
            assert_eq!(v, s.parse::<f64>().unwrap(), "{s}");
        }
        assert!(decimal(b"abc").is_err());
        assert!(decimal(b".").is_err());
    }

    #[test]
    fn days_match_chrono() {
        for (y, m, d) in [
            (1970, 1, 1),
            (2000, 2, 29),
            (2023, 3, 12),
            (1969, 12, 31),
            (2262, 4, 11),
        ] {
            let expect = NaiveDate::from_ymd_opt(y, m, d)
                .unwrap()
                .signed_duration_since(NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                .num_days();
            assert_eq!(days_from_civil(i64::from(y), m, d), expect);
        }
    }

    #[test]
    fn parses_each_layout() {
        assert_eq!(
            parse(TextFormat::CsvTicks, "1746396000058002213,20186.25,4,B"),
            Some(Line::Tick {
                stamp: Stamp::Utc(1_746_396_000_058_002_213),
                price: 20186.25,
                size: 4.0,
                side: Side::Buy
            })
        );
        assert_eq!(
            parse(TextFormat::CsvTicks, "1312149600120000000,1306,2,"),
            Some(Line::Tick {
                stamp: Stamp::Utc(1_312_149_600_120_000_000),
                price: 1306.0,
                size: 2.0,
                side: Side::None
            })
        );
        assert_eq!(
            parse(TextFormat::CsvTicks, "2011/07/31 22:00:00.120,1306.0,2"),
            Some(Line::Tick {
                stamp: Stamp::Local(1_312_149_600_120_000_000),
                price: 1306.0,
                size: 2.0,
                side: Side::None
            })
        );
        assert_eq!(
            parse(
                TextFormat::CsvBars,
                "1672700400,11122.5,11150.0,11090.0,11091.75,2415"
            ),
            Some(Line::Bar {
                stamp: Stamp::Utc(1_672_700_400 * NS_PER_SEC),
                ohlc: [11122.5, 11150.0, 11090.0, 11091.75],
                volume: 2415.0
            })
        );
        assert_eq!(
            parse(TextFormat::CsvBars, "2023-11-19T23:00:00Z,1,2,0.5,1.5,3"),
            Some(Line::Bar {
                stamp: Stamp::Utc(1_700_434_800 * NS_PER_SEC),
                ohlc: [1.0, 2.0, 0.5, 1.5],
                volume: 3.0
            })
        );
        assert_eq!(
            parse(
                TextFormat::CsvBars,
                "2023-11-19 18:00:00-05:00,1,2,0.5,1.5,3"
            ),
            Some(Line::Bar {
                stamp: Stamp::Utc(1_700_434_800 * NS_PER_SEC),
                ohlc: [1.0, 2.0, 0.5, 1.5],
                volume: 3.0
            })
        );
        assert_eq!(
            parse(
                TextFormat::NinjaTicks,
                "20231120 093000 1230000;15895.25;15895;15895.25;3"
            ),
            Some(Line::Tick {
                stamp: Stamp::Local((1_700_438_400 + 34_200) * NS_PER_SEC + 123_000_000),
                price: 15895.25,
                size: 3.0,
                side: Side::Buy
            })
        );
        assert_eq!(
            parse(TextFormat::NinjaMinutes, "20231120 093100;1;2;0.5;1.5;7"),
            Some(Line::Bar {
                stamp: Stamp::Local((1_700_438_400 + 34_260) * NS_PER_SEC),
                ohlc: [1.0, 2.0, 0.5, 1.5],
                volume: 7.0
            })
        );
        assert_eq!(parse(TextFormat::CsvBars, "1,2,3"), None);
        assert_eq!(
            parse(TextFormat::CsvBars, "2023-02-30 00:00,1,2,0.5,1.5,3"),
            None
        );
    }

    #[test]
    fn headers_name_the_epoch_unit() {
        assert_eq!(header_epoch_unit(b"ts_utc_ns,price,size,side"), Some(1));
        assert_eq!(header_epoch_unit(b"time_ms,open"), Some(1_000_000));
        assert_eq!(header_epoch_unit(b"time,open"), None);
    }

    #[test]
    fn detects_layouts() {
        assert_eq!(
            detect_format(b"ts_utc_ns,price,size,side\n1,2,3,B\n"),
            Some(TextFormat::CsvTicks)
        );
        assert_eq!(
            detect_format(b"timestamp,open,high,low,close,volume\n"),
            Some(TextFormat::CsvBars)
        );
        assert_eq!(
            detect_format(b"20231120 093000 1230000;1;1;1;1\n"),
            Some(TextFormat::NinjaTicks)
        );
        assert_eq!(
            detect_format(b"20231120 093100;1;2;0.5;1.5;7\r\n"),
            Some(TextFormat::NinjaMinutes)
        );
        assert_eq!(detect_format(b"a;b\n"), None);
    }

    #[test]
    fn failure_names_the_field() {
        let line = b"1746396000058002213,20186.x5,4,B";
        let err = parse_line(TextFormat::CsvTicks, line, None).unwrap_err();
        let nom::Err::Error(e) = err else { panic!() };
        let msg = describe_parse_failure(TextFormat::CsvTicks, line, e.input);
        assert!(msg.contains("field 2 (price)"), "{msg}");
    }

    #[test]
    fn new_york_times_follow_dst() {
        let opts = ImportOptions {
            tz: parse_tz("America/New_York").unwrap(),
            ..Default::default()
        };
        // 2023-11-05: 01:30 happens twice (EDT then EST).
        let text = "timestamp,open,high,low,close,volume\n\
                    2023-11-05 01:30:00,1,1,1,1,1\n\
                    2023-11-05 01:10:00,1,1,1,1,1\n\
                    2023-11-05 09:30:00,1,1,1,1,1\n";
        let (recs, _) = parse_bytes(Path::new("t.csv"), text.as_bytes(), &opts).unwrap();
        let ParsedRecords::Bars(b) = recs else {
            panic!()
        };
        let first = b[0].ts_ns / NS_PER_SEC;
        // The second line, 01:10, would go back in time as EDT, so it is read as EST.
        assert_eq!(first, 1_699_162_200); // 05:30 UTC (EDT)
        assert_eq!(b[1].ts_ns / NS_PER_SEC, 1_699_164_600); // 06:10 UTC (EST)
        assert_eq!(b[2].ts_ns / NS_PER_SEC, 1_699_194_600); // 14:30 UTC
        let gap = "2023-03-12 02:30:00,1,1,1,1,1\n";
        let err = parse_bytes(
            Path::new("t.csv"),
            gap.as_bytes(),
            &ImportOptions {
                format: Some(TextFormat::CsvBars),
                ..opts
            },
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("line 1") && err.to_string().contains("does not exist"),
            "{err}"
        );
    }
}
