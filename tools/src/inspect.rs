//! What is in a market-data file: the summary behind `nq-data inspect`.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use nq_formats::{Bar, Side, Tick};
use serde::Serialize;

use crate::error::Result;
use crate::market_data::{DataKind, MarketReader};
use crate::time::{format_date, format_ts, NewYorkClock};

/// Settings of an inspection.
#[derive(Debug, Clone, Copy)]
pub struct InspectOptions {
    /// Prices off this grid are counted as anomalies (NQ: 0.25).
    pub tick_size: f64,
    /// Pauses longer than this are listed as gaps.
    pub gap_minutes: f64,
    /// A move between consecutive prices of more than this fraction is a jump.
    pub jump_fraction: f64,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            tick_size: 0.25,
            gap_minutes: 30.0,
            jump_fraction: 0.01,
        }
    }
}

/// One trading day (CME convention: from 18:00 New York the evening before).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DaySummary {
    pub date: String,
    pub rows: u64,
    /// Rows inside regular trading hours, 09:30-16:00 New York.
    pub rth_rows: u64,
    pub volume: f64,
    pub first: String,
    pub last: String,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
}

/// A pause between two consecutive rows.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gap {
    pub from: String,
    pub to: String,
    pub minutes: f64,
}

/// Things a user should look at before training on the data.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Anomalies {
    /// Prices (any of OHLC for bars) not on the tick grid.
    pub off_grid_prices: u64,
    pub first_off_grid_row: Option<u64>,
    /// Rows identical to the previous one (legal for ticks: two prints).
    pub duplicate_rows: u64,
    /// Rows sharing the previous row's timestamp.
    pub same_timestamp_rows: u64,
    pub zero_size_rows: u64,
    /// Consecutive price moves larger than the jump fraction.
    pub price_jumps: u64,
    pub first_price_jump_row: Option<u64>,
}

/// The result of [`inspect`]; `--json` prints it as is.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InspectReport {
    pub files: Vec<String>,
    pub kind: String,
    pub columns: Vec<String>,
    pub rows: u64,
    pub first: Option<String>,
    pub last: Option<String>,
    pub price_min: Option<f64>,
    pub price_max: Option<f64>,
    pub volume: f64,
    pub tick_size: f64,
    /// Trading days with rows inside RTH.
    pub rth_days: u64,
    /// Trading days with any rows (Globex days).
    pub globex_days: u64,
    pub days: Vec<DaySummary>,
    pub gap_minutes: f64,
    pub gaps_over_threshold: u64,
    /// The longest gaps, longest first (at most 10).
    pub longest_gaps: Vec<Gap>,
    /// Volume by New York clock hour, 0-23: the intraday profile.
    pub volume_by_ny_hour: Vec<f64>,
    /// Trade counts by aggressor side (ticks only): buy, sell, none.
    pub sides: Option<SideCounts>,
    pub anomalies: Anomalies,
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct SideCounts {
    pub buy: u64,
    pub sell: u64,
    pub none: u64,
}

/// What inspect needs of one row, whether tick or bar.
struct Row {
    ts: i64,
    low: f64,
    high: f64,
    open: f64,
    close: f64,
    volume: f64,
    side: Option<Side>,
}

impl From<&Tick> for Row {
    fn from(t: &Tick) -> Row {
        Row {
            ts: t.ts_ns,
            low: t.price,
            high: t.price,
            open: t.price,
            close: t.price,
            volume: t.size,
            side: Some(t.side),
        }
    }
}

impl From<&Bar> for Row {
    fn from(b: &Bar) -> Row {
        Row {
            ts: b.ts_ns,
            low: b.low,
            high: b.high,
            open: b.open,
            close: b.close,
            volume: b.volume,
            side: None,
        }
    }
}

struct DayAcc {
    rows: u64,
    rth_rows: u64,
    volume: f64,
    first: i64,
    last: i64,
    open: f64,
    high: f64,
    low: f64,
    close: f64,
}

struct Acc {
    opts: InspectOptions,
    clock: NewYorkClock,
    rows: u64,
    first: Option<i64>,
    last_ts: i64,
    last_close: f64,
    last_key: Option<(i64, u64, u64, u64)>,
    price_min: f64,
    price_max: f64,
    volume: f64,
    days: BTreeMap<NaiveDate, DayAcc>,
    gaps: Vec<Gap>,
    gaps_over: u64,
    hours: [f64; 24],
    sides: SideCounts,
    anomalies: Anomalies,
}

impl Acc {
    fn off_grid(&self, p: f64) -> bool {
        let steps = p / self.opts.tick_size;
        (steps - steps.round()).abs() > 1e-6
    }

    fn add(&mut self, r: &Row) {
        let row = self.rows;
        self.rows += 1;
        if self.first.is_none() {
            self.first = Some(r.ts);
        } else {
            let gap_min = (r.ts - self.last_ts) as f64 / 60e9;
            if gap_min > self.opts.gap_minutes {
                self.gaps_over += 1;
                self.gaps.push(Gap {
                    from: format_ts(self.last_ts),
                    to: format_ts(r.ts),
                    minutes: gap_min,
                });
                // Keep only the longest few so memory stays bounded.
                if self.gaps.len() > 64 {
                    self.trim_gaps();
                }
            }
            if r.ts == self.last_ts {
                self.anomalies.same_timestamp_rows += 1;
            }
            if (r.open - self.last_close).abs() > self.opts.jump_fraction * self.last_close {
                self.anomalies.price_jumps += 1;
                self.anomalies.first_price_jump_row.get_or_insert(row);
            }
        }
        let key = (
            r.ts,
            r.open.to_bits(),
            r.close.to_bits(),
            r.volume.to_bits(),
        );
        if self.last_key == Some(key) {
            self.anomalies.duplicate_rows += 1;
        }
        self.last_key = Some(key);
        self.last_ts = r.ts;
        self.last_close = r.close;
        self.price_min = self.price_min.min(r.low);
        self.price_max = self.price_max.max(r.high);
        self.volume += r.volume;
        if r.volume == 0.0 {
            self.anomalies.zero_size_rows += 1;
        }
        if [r.open, r.high, r.low, r.close]
            .iter()
            .any(|&p| self.off_grid(p))
        {
            self.anomalies.off_grid_prices += 1;
            self.anomalies.first_off_grid_row.get_or_insert(row);
        }
        match r.side {
            Some(Side::Buy) => self.sides.buy += 1,
            Some(Side::Sell) => self.sides.sell += 1,
            Some(Side::None) => self.sides.none += 1,
            None => {}
        }
        let local = self.clock.local(r.ts);
        self.hours[usize::from(local.minute_of_day / 60).min(23)] += r.volume;
        let in_rth = (9 * 60 + 30..16 * 60).contains(&local.minute_of_day);
        let date = self.clock.trading_date(r.ts);
        let day = self.days.entry(date).or_insert(DayAcc {
            rows: 0,
            rth_rows: 0,
            volume: 0.0,
            first: r.ts,
            last: r.ts,
            open: r.open,
            high: r.high,
            low: r.low,
            close: r.close,
        });
        day.rows += 1;
        day.rth_rows += u64::from(in_rth);
        day.volume += r.volume;
        day.last = r.ts;
        day.high = day.high.max(r.high);
        day.low = day.low.min(r.low);
        day.close = r.close;
    }

    fn trim_gaps(&mut self) {
        self.gaps.sort_by(|a, b| b.minutes.total_cmp(&a.minutes));
        self.gaps.truncate(10);
    }
}

/// Reads the whole input once and summarises it.
pub fn inspect(reader: &MarketReader, opts: InspectOptions) -> Result<InspectReport> {
    let mut acc = Acc {
        opts,
        clock: NewYorkClock::new(),
        rows: 0,
        first: None,
        last_ts: 0,
        last_close: 0.0,
        last_key: None,
        price_min: f64::INFINITY,
        price_max: f64::NEG_INFINITY,
        volume: 0.0,
        days: BTreeMap::new(),
        gaps: Vec::new(),
        gaps_over: 0,
        hours: [0.0; 24],
        sides: SideCounts::default(),
        anomalies: Anomalies::default(),
    };
    match reader.kind() {
        DataKind::Ticks => reader.for_each_tick_chunk(|c| {
            c.iter().for_each(|t| acc.add(&Row::from(t)));
            Ok(())
        })?,
        DataKind::Bars => reader.for_each_bar_chunk(|c| {
            c.iter().for_each(|b| acc.add(&Row::from(b)));
            Ok(())
        })?,
    }
    acc.trim_gaps();
    let has_rows = acc.rows > 0;
    Ok(InspectReport {
        files: reader
            .files()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        kind: reader.kind().to_string(),
        columns: reader.column_names(),
        rows: acc.rows,
        first: acc.first.map(format_ts),
        last: has_rows.then(|| format_ts(acc.last_ts)),
        price_min: has_rows.then_some(acc.price_min),
        price_max: has_rows.then_some(acc.price_max),
        volume: acc.volume,
        tick_size: opts.tick_size,
        rth_days: acc.days.values().filter(|d| d.rth_rows > 0).count() as u64,
        globex_days: acc.days.len() as u64,
        days: acc
            .days
            .iter()
            .map(|(date, d)| DaySummary {
                date: format_date(*date),
                rows: d.rows,
                rth_rows: d.rth_rows,
                volume: d.volume,
                first: format_ts(d.first),
                last: format_ts(d.last),
                open: d.open,
                high: d.high,
                low: d.low,
                close: d.close,
            })
            .collect(),
        gap_minutes: opts.gap_minutes,
        gaps_over_threshold: acc.gaps_over,
        longest_gaps: acc.gaps,
        volume_by_ny_hour: acc.hours.to_vec(),
        sides: (reader.kind() == DataKind::Ticks).then_some(acc.sides),
        anomalies: acc.anomalies,
    })
}

/// Opens `path` and inspects it.
pub fn inspect_path(path: &Path, opts: InspectOptions) -> Result<InspectReport> {
    inspect(&MarketReader::open(path)?, opts)
}

impl std::fmt::Display for InspectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "files:      {}", self.files.join(", "))?;
        writeln!(f, "kind:       {}", self.kind)?;
        writeln!(f, "columns:    {}", self.columns.join(", "))?;
        writeln!(f, "rows:       {}", self.rows)?;
        if let (Some(a), Some(b)) = (&self.first, &self.last) {
            writeln!(f, "span (UTC): {a} .. {b}")?;
        }
        if let (Some(lo), Some(hi)) = (self.price_min, self.price_max) {
            writeln!(f, "prices:     {lo} .. {hi}")?;
        }
        writeln!(f, "volume:     {}", self.volume)?;
        if let Some(s) = self.sides {
            writeln!(
                f,
                "sides:      buy {}, sell {}, none {}",
                s.buy, s.sell, s.none
            )?;
        }
        writeln!(
            f,
            "sessions:   {} Globex days, {} with RTH rows (America/New_York)",
            self.globex_days, self.rth_days
        )?;
        writeln!(
            f,
            "  {:<10} {:>9} {:>9} {:>10} {:>11} {:>11} {:>11} {:>11}",
            "date", "rows", "rth_rows", "volume", "open", "high", "low", "close"
        )?;
        for d in &self.days {
            writeln!(
                f,
                "  {:<10} {:>9} {:>9} {:>10} {:>11} {:>11} {:>11} {:>11}",
                d.date, d.rows, d.rth_rows, d.volume, d.open, d.high, d.low, d.close
            )?;
        }
        writeln!(
            f,
            "gaps over {} min: {}",
            self.gap_minutes, self.gaps_over_threshold
        )?;
        for g in &self.longest_gaps {
            writeln!(f, "  {:>9.1} min  {} .. {}", g.minutes, g.from, g.to)?;
        }
        let total: f64 = self.volume_by_ny_hour.iter().sum();
        if total > 0.0 {
            writeln!(f, "volume by New York hour:")?;
            for (h, v) in self.volume_by_ny_hour.iter().enumerate() {
                let bar = "#".repeat((v / total * 200.0).round() as usize);
                writeln!(f, "  {h:02}h {:>5.1}% {bar}", v / total * 100.0)?;
            }
        }
        let a = &self.anomalies;
        writeln!(f, "anomalies:")?;
        writeln!(
            f,
            "  off the {} grid: {}{}",
            self.tick_size,
            a.off_grid_prices,
            a.first_off_grid_row
                .map(|r| format!(" (first at row {r})"))
                .unwrap_or_default()
        )?;
        writeln!(f, "  duplicate rows: {}", a.duplicate_rows)?;
        writeln!(f, "  rows sharing a timestamp: {}", a.same_timestamp_rows)?;
        writeln!(f, "  zero size/volume: {}", a.zero_size_rows)?;
        write!(
            f,
            "  price jumps: {}{}",
            a.price_jumps,
            a.first_price_jump_row
                .map(|r| format!(" (first at row {r})"))
                .unwrap_or_default()
        )
    }
}
