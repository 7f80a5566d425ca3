//! In sample or out of sample: which of the replayed days the checkpoint
//! saw in training or validation (the dates nq-train records in its
//! metadata), and runs restricted to some of their days, stitched into one
//! continuous account (a mixed replay's two parts; walk-forward's test
//! folds).

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::Serialize;

use nq_runtime::engine::DecisionKind;
use nq_runtime::sim::ExitReason;

use super::{EquityRow, RowKind, Run};
use crate::time::NewYorkClock;

/// Checkpoint metadata key: the CME trading dates the policy was trained on,
/// `YYYY-MM-DD` joined by commas.
pub const TRAINED_ON_KEY: &str = "data.trained_on";
/// The dates the checkpoint was selected on (validation), as above.
pub const VALIDATED_ON_KEY: &str = "data.validated_on";
/// How the checkpoint was chosen ("final" or the validation metric and value).
pub const SELECTION_KEY: &str = "selection";

/// The dates a checkpoint has seen, from its metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeenDates {
    pub trained_on: BTreeSet<NaiveDate>,
    pub validated_on: BTreeSet<NaiveDate>,
    pub selection: Option<String>,
}

impl SeenDates {
    /// From the checkpoint's metadata entries; `None` when it records no
    /// training dates (an older checkpoint, one made outside nq-train).
    pub fn from_metadata<'a>(
        entries: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Option<SeenDates>, String> {
        let mut seen = SeenDates::default();
        let mut any = false;
        for (key, value) in entries {
            let set = match key {
                TRAINED_ON_KEY => &mut seen.trained_on,
                VALIDATED_ON_KEY => &mut seen.validated_on,
                SELECTION_KEY => {
                    seen.selection = Some(value.to_string());
                    continue;
                }
                _ => continue,
            };
            any |= key == TRAINED_ON_KEY;
            *set = parse_dates(value).map_err(|e| format!("metadata `{key}`: {e}"))?;
        }
        Ok(any.then_some(seen))
    }

    /// Every date the checkpoint was fitted or chosen on.
    pub fn all(&self) -> BTreeSet<NaiveDate> {
        self.trained_on.union(&self.validated_on).copied().collect()
    }
}

/// `YYYY-MM-DD,YYYY-MM-DD,...` (empty: none).
pub fn parse_dates(text: &str) -> Result<BTreeSet<NaiveDate>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date"))
        })
        .collect()
}

/// `YYYY-MM-DD` joined by commas, in order.
pub fn format_dates<'a>(dates: impl IntoIterator<Item = &'a NaiveDate>) -> String {
    dates
        .into_iter()
        .map(|d| d.format("%Y-%m-%d").to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether a result is about days the policy saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Sample {
    /// Every day was trained or validated on.
    InSample,
    /// No day was.
    OutOfSample,
    /// Some were: never to be read as out of sample (its parts are reported).
    Mixed,
    /// The checkpoint records no dates.
    Unknown,
}

impl Sample {
    pub const fn name(self) -> &'static str {
        match self {
            Sample::InSample => "IN-SAMPLE",
            Sample::OutOfSample => "OUT-OF-SAMPLE",
            Sample::Mixed => "MIXED",
            Sample::Unknown => "UNKNOWN",
        }
    }

    /// `days` (replayed) against what the checkpoint saw.
    pub fn of(days: &BTreeSet<NaiveDate>, seen: Option<&SeenDates>) -> Sample {
        let Some(seen) = seen else {
            return Sample::Unknown;
        };
        let all = seen.all();
        let inside = days.iter().filter(|d| all.contains(d)).count();
        match inside {
            0 => Sample::OutOfSample,
            n if n == days.len() => Sample::InSample,
            _ => Sample::Mixed,
        }
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The CME trading dates of a run's rows, in order.
pub fn run_days(run: &Run) -> BTreeSet<NaiveDate> {
    let mut clock = NewYorkClock::new();
    run.equity
        .iter()
        .map(|r| clock.trading_date(r.ts_ns))
        .collect()
}

/// `parts` (each a run and the days of it to keep) as one run named `name`:
/// the rows and trades of those days only, each day's equity rebased so the
/// account runs on continuously from the starting balance, as if the kept
/// days had been traded back to back. A day's P&L stays the P&L it had in
/// its run (nothing is held overnight, so days are independent); days left
/// out take nothing with them. Parts must be in time order.
pub fn stitch(name: &str, parts: &[(&Run, &BTreeSet<NaiveDate>)]) -> Run {
    let template = parts.first().map(|(r, _)| *r);
    let mut out = Run {
        name: name.to_string(),
        kind: template.map_or("policy", |r| r.kind),
        sim: template.map_or_else(Default::default, |r| r.sim),
        trades: Vec::new(),
        equity: Vec::new(),
        decisions: Vec::new(),
        breached: false,
        open_at_end: 0,
        records: 0,
        max_drawdown: 0.0,
    };
    let start = out.sim.starting_balance;
    // The stitched account's equity at the end of the last day kept.
    let mut carried = start;
    let mut clock = NewYorkClock::new();
    for (run, days) in parts {
        // The run's own equity at the end of the day before the current one.
        let mut before_day = run.sim.starting_balance;
        let mut current: Option<NaiveDate> = None;
        let mut offset = 0.0;
        let mut last_kept: Option<f64> = None;
        for (row, decision) in run.rows() {
            let day = clock.trading_date(row.ts_ns);
            if current != Some(day) {
                if let Some(end) = last_kept.take() {
                    carried = end;
                }
                current = Some(day);
                offset = carried - before_day;
            }
            if days.contains(&day) {
                let rebased = EquityRow {
                    equity: row.equity + offset,
                    balance: row.balance + offset,
                    ..*row
                };
                last_kept = Some(rebased.equity);
                out.equity.push(rebased);
                if let Some(d) = decision {
                    out.decisions.push(*d);
                }
            }
            before_day = row.equity;
        }
        if let Some(end) = last_kept {
            carried = end;
        }
        out.trades.extend(
            run.trades
                .iter()
                .filter(|t| days.contains(&clock.trading_date(t.exit_ts_ns)))
                .copied(),
        );
        out.records += run.records;
    }
    // A breach on a day left out is not this run's.
    out.breached = out
        .equity
        .iter()
        .any(|r| r.kind == RowKind::Decided(DecisionKind::DrawdownBreached))
        || out
            .trades
            .iter()
            .any(|t| t.exit_reason == ExitReason::Drawdown);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{daily_pnl_by_date, RowKind};

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn dates(list: &[&str]) -> BTreeSet<NaiveDate> {
        list.iter().map(|s| d(s)).collect()
    }

    #[test]
    fn labels_follow_the_overlap() {
        let seen = SeenDates {
            trained_on: dates(&["2024-03-04", "2024-03-05"]),
            validated_on: dates(&["2024-03-06"]),
            selection: None,
        };
        let cases = [
            (&["2024-03-04", "2024-03-06"][..], Sample::InSample),
            (&["2024-03-07", "2024-03-08"][..], Sample::OutOfSample),
            (&["2024-03-06", "2024-03-07"][..], Sample::Mixed),
        ];
        for (days, want) in cases {
            assert_eq!(Sample::of(&dates(days), Some(&seen)), want, "{days:?}");
        }
        assert_eq!(Sample::of(&dates(&["2024-03-07"]), None), Sample::Unknown);
    }

    #[test]
    fn dates_round_trip_and_bad_ones_are_named() {
        let set = dates(&["2024-03-05", "2024-03-04"]);
        assert_eq!(parse_dates(&format_dates(&set)).unwrap(), set);
        assert!(parse_dates("2024-03-04,tuesday")
            .unwrap_err()
            .contains("tuesday"));
        let entries = [(TRAINED_ON_KEY, "2024-03-04"), (SELECTION_KEY, "final")];
        let seen = SeenDates::from_metadata(entries.into_iter())
            .unwrap()
            .unwrap();
        assert_eq!(seen.selection.as_deref(), Some("final"));
        assert_eq!(
            SeenDates::from_metadata([("x", "y")].into_iter()).unwrap(),
            None
        );
    }

    /// A run over three days (16:00 New York rows), day P&L +100, -40, +70.
    fn three_day_run() -> Run {
        let day_ns = 86_400_000_000_000i64;
        // 2024-03-04 16:00 New York (EST) = 21:00 UTC.
        let t0 = 1_709_586_000_000_000_000i64;
        let mut run = Run::new("p", "policy", nq_formats::SimConfig::default());
        let mut equity = 50_000.0;
        for (k, pnl) in [100.0, -40.0, 70.0].into_iter().enumerate() {
            for (i, step) in [0.5, 0.5].into_iter().enumerate() {
                equity += pnl * step;
                run.equity.push(EquityRow {
                    ts_ns: t0 + k as i64 * day_ns - (1 - i as i64) * 60_000_000_000,
                    equity,
                    balance: equity,
                    close: 100.0,
                    atr: 1.0,
                    position: 0,
                    kind: RowKind::OutsideSession,
                });
            }
        }
        run
    }

    #[test]
    fn a_stitched_run_keeps_each_days_pnl_and_runs_on_from_the_start() {
        let run = three_day_run();
        let all = run_days(&run);
        assert_eq!(all.len(), 3);
        let days: Vec<NaiveDate> = all.iter().copied().collect();
        let keep: BTreeSet<NaiveDate> = [days[0], days[2]].into_iter().collect();
        let part = stitch("p [part]", &[(&run, &keep)]);
        let daily = daily_pnl_by_date(&part);
        assert_eq!(daily, vec![(days[0], 100.0), (days[2], 70.0)]);
        assert_eq!(part.equity.last().unwrap().equity, 50_170.0);
        // Two runs back to back: the second's days go on from the first's end.
        let second: BTreeSet<NaiveDate> = [days[1]].into_iter().collect();
        let both = stitch("p", &[(&run, &keep), (&run, &second)]);
        let pnl: f64 = daily_pnl_by_date(&both).iter().map(|(_, p)| p).sum();
        assert_eq!(pnl, 130.0);
        assert!(!both.breached);
    }
}
