//! The truth about a replay: whether its days were seen in training, and
//! whether its result could be luck. nq-eval, nq-train's held-out summary
//! and the walk-forward all judge their results here, the same way.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use nq_runtime::engine::EngineConfig;

use super::sample::{run_days, stitch, Sample, SeenDates};
use super::significance::{assess, Significance, Trials};
use super::{daily_pnl_by_date, replay_baseline, Baseline, DateRange, Run, Source, Summary};
use crate::checkpoint_file::CheckpointFile;
use crate::Result;

/// Random-valid-action seeds of the default null.
pub const DEFAULT_NULL_SEEDS: usize = 100;

/// The null: the daily P&L of random valid actions over the same data and
/// engine, one series per seed.
#[derive(Debug, Clone, Default)]
pub struct NullRuns {
    daily: Vec<BTreeMap<NaiveDate, f64>>,
}

impl NullRuns {
    /// Random valid actions with seeds `1..=seeds` (the reported random
    /// baseline is seed 1) over `data` in `range`, with `checkpoint`'s
    /// engine and `config`, on every core.
    pub fn replay(
        checkpoint: &CheckpointFile,
        config: Option<EngineConfig>,
        data: Source<'_>,
        range: DateRange,
        seeds: usize,
    ) -> Result<NullRuns> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let seeds: Vec<u64> = (1..=seeds as u64).collect();
        let chunk = seeds.len().div_ceil(threads).max(1);
        let results: Vec<Result<Vec<BTreeMap<NaiveDate, f64>>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = seeds
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|&seed| {
                                let run = replay_baseline(
                                    Baseline::Random { seed },
                                    checkpoint,
                                    config,
                                    data,
                                    range,
                                    &mut |_| {},
                                )?;
                                Ok(daily_pnl_by_date(&run).into_iter().collect())
                            })
                            .collect()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join().unwrap_or_else(|_| {
                        Err(crate::Error::Internal("a null replay panicked".into()))
                    })
                })
                .collect()
        });
        let mut daily = Vec::with_capacity(seeds.len());
        for part in results {
            daily.extend(part?);
        }
        Ok(NullRuns { daily })
    }

    pub fn seeds(&self) -> usize {
        self.daily.len()
    }

    /// Each seed's net P&L over `days`.
    pub fn net_over(&self, days: &BTreeSet<NaiveDate>) -> Vec<f64> {
        self.daily
            .iter()
            .map(|d| days.iter().filter_map(|day| d.get(day)).sum())
            .collect()
    }
}

/// The significance of `run` against `null` over the run's own days, as
/// one of `trials` candidates.
pub fn judge(run: &Run, null: &NullRuns, trials: Trials) -> Significance {
    let daily = daily_pnl_by_date(run);
    let days: BTreeSet<NaiveDate> = daily.iter().map(|(d, _)| *d).collect();
    let values: Vec<f64> = daily.iter().map(|(_, p)| *p).collect();
    assess(&values, &null.net_over(&days), trials)
}

/// A policy's run, labelled, and for a mixed one its two parts.
#[derive(Debug, Clone)]
pub struct Labelled {
    pub sample: Sample,
    /// `name [in-sample]` and `name [out-of-sample]`, stitched from the
    /// days of each kind, when the run is mixed.
    pub parts: Vec<(Sample, Run)>,
}

/// Labels `run` by the days `seen` (the checkpoint's), and splits a mixed one.
pub fn label(run: &Run, seen: Option<&SeenDates>) -> Labelled {
    let days = run_days(run);
    let sample = Sample::of(&days, seen);
    let parts = match (sample, seen) {
        (Sample::Mixed, Some(seen)) => {
            let all = seen.all();
            let (inside, outside): (BTreeSet<NaiveDate>, BTreeSet<NaiveDate>) =
                days.iter().partition(|d| all.contains(d));
            vec![
                (
                    Sample::InSample,
                    stitch(&format!("{} [in-sample]", run.name), &[(run, &inside)]),
                ),
                (
                    Sample::OutOfSample,
                    stitch(&format!("{} [out-of-sample]", run.name), &[(run, &outside)]),
                ),
            ]
        }
        _ => Vec::new(),
    };
    Labelled { sample, parts }
}

/// The summary of a policy run with its label and significance.
pub fn judged_summary(run: &Run, sample: Sample, null: &NullRuns, trials: Trials) -> Summary {
    let mut s = Summary::of(run);
    s.sample = sample.name().to_string();
    s.significance = Some(judge(run, null, trials));
    s
}
