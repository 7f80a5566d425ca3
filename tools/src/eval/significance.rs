//! Could this result be luck? The figures every summary carries beside its
//! P&L:
//!
//! - a **block bootstrap over days** (circular blocks of `ceil(n^(1/3))`
//!   days, 2,000 resamples, a fixed seed so the same inputs give the same
//!   bytes) for 95% intervals of the mean daily P&L and of the annualised
//!   daily Sharpe ratio;
//! - the policy's **percentile against a null**: the net P&L of many
//!   random-valid-action seeds over the same days, through the same engine;
//! - the **deflated Sharpe ratio** (Bailey and López de Prado, "The Deflated
//!   Sharpe Ratio", 2014): the probability that the true Sharpe ratio is
//!   above the best one `trials` candidates with no edge would show by luck,
//!   given the daily returns' skew and kurtosis. With one trial it is the
//!   probabilistic Sharpe ratio against zero;
//! - a plain **verdict**: an edge is detected at 95% only when the bootstrap
//!   interval of the mean daily P&L lies above zero, the policy beats 95% of
//!   the null, and the deflated Sharpe ratio is at least 0.95. Each alone is
//!   easy to pass without an edge: a policy that trades less than random
//!   beats the random null, and a lucky streak of few days lifts the
//!   interval; together they are what `tests` measure a false-positive rate
//!   of on data with no edge.
//!
//! Fewer than 20 days is flagged: a daily Sharpe ratio from so few days says
//! little.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, Normal};

use nq_runtime::rng::Rng;

/// Days a year the daily Sharpe ratio is annualised with.
const YEAR_DAYS: f64 = 252.0;
/// Below this many days the Sharpe ratio is flagged.
pub const MIN_DAYS_FOR_SHARPE: usize = 20;
const RESAMPLES: usize = 2_000;
/// The confidence the verdict is stated at.
pub const CONFIDENCE: f64 = 0.95;
const EULER_MASCHERONI: f64 = 0.577_215_664_901_532_9;

/// How many candidates a result was picked from, and how their (daily,
/// not annualised) Sharpe ratios spread: what the deflated Sharpe ratio
/// corrects for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Trials {
    pub count: usize,
    /// Variance of the candidates' daily Sharpe ratios (0 with one).
    pub sharpe_variance: f64,
}

impl Trials {
    pub const ONE: Trials = Trials {
        count: 1,
        sharpe_variance: 0.0,
    };

    /// The candidates' daily P&L series: their number and Sharpe spread.
    pub fn of(candidates: &[&[f64]]) -> Trials {
        let sharpes: Vec<f64> = candidates.iter().filter_map(|d| daily_sharpe(d)).collect();
        Trials {
            count: candidates.len().max(1),
            sharpe_variance: variance(&sharpes).unwrap_or(0.0),
        }
    }
}

/// The significance figures of one result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Significance {
    pub days: usize,
    pub mean_daily_pnl_usd: f64,
    /// 95% block-bootstrap interval of the mean daily P&L.
    pub mean_daily_pnl_ci_usd: Option<(f64, f64)>,
    /// Annualised (sqrt 252) Sharpe ratio of daily P&L.
    pub sharpe: Option<f64>,
    pub sharpe_ci: Option<(f64, f64)>,
    /// Random-valid-action seeds in the null.
    pub null_seeds: usize,
    /// Share of the null's net P&L strictly below the policy's, in [0, 1].
    pub null_percentile: Option<f64>,
    /// `(1 + #null >= policy) / (1 + seeds)`.
    pub null_p_value: Option<f64>,
    pub trials: usize,
    /// Probability that the true Sharpe ratio beats what `trials` no-edge
    /// candidates would show by luck.
    pub deflated_sharpe: Option<f64>,
    pub edge_detected: bool,
    /// One line a person reads first.
    pub verdict: String,
    pub warnings: Vec<String>,
}

/// The figures of a result with daily P&L `daily`, against the net P&L of
/// the null's seeds over the same days, picked from `trials` candidates.
pub fn assess(daily: &[f64], null_net_pnl: &[f64], trials: Trials) -> Significance {
    let days = daily.len();
    let mean_daily = mean(daily).unwrap_or(0.0);
    let boot = bootstrap(daily);
    let total: f64 = daily.iter().sum();
    let (null_percentile, null_p_value) = if null_net_pnl.is_empty() {
        (None, None)
    } else {
        let below = null_net_pnl.iter().filter(|&&x| x < total).count();
        let at_least = null_net_pnl.len() - below;
        (
            Some(below as f64 / null_net_pnl.len() as f64),
            Some((1 + at_least) as f64 / (1 + null_net_pnl.len()) as f64),
        )
    };
    let deflated_sharpe = deflated_sharpe(daily, trials);
    let mut warnings = Vec::new();
    if days < MIN_DAYS_FOR_SHARPE {
        warnings.push(format!(
            "only {days} days: a daily Sharpe ratio from fewer than {MIN_DAYS_FOR_SHARPE} days says little"
        ));
    }
    if null_net_pnl.is_empty() {
        warnings.push("no random-action null was run (--null-seeds 0)".to_string());
    }
    let interval_above_zero = boot.mean.is_some_and(|(lo, _)| lo > 0.0);
    let beats_null = null_p_value.is_some_and(|p| p <= 1.0 - CONFIDENCE);
    let deflated_ok = deflated_sharpe.is_some_and(|p| p >= CONFIDENCE);
    let edge_detected = interval_above_zero && beats_null && deflated_ok;
    let verdict = if edge_detected {
        format!(
            "edge detected at {:.0}%: the mean daily P&L's interval is above zero, the policy beats {:.0}% of {} random-action runs, and its Sharpe ratio survives {} trial(s)",
            CONFIDENCE * 100.0,
            null_percentile.unwrap_or(0.0) * 100.0,
            null_net_pnl.len(),
            trials.count
        )
    } else {
        let mut why = Vec::new();
        if !interval_above_zero {
            why.push("the mean daily P&L's interval reaches zero or below".to_string());
        }
        if !beats_null {
            why.push(if null_net_pnl.is_empty() {
                "no random-action null to beat".to_string()
            } else {
                format!(
                    "it beats only {:.0}% of {} random-action runs",
                    null_percentile.unwrap_or(0.0) * 100.0,
                    null_net_pnl.len()
                )
            });
        }
        if !deflated_ok {
            why.push(match deflated_sharpe {
                Some(p) => format!(
                    "its deflated Sharpe probability is {p:.2} over {} trial(s)",
                    trials.count
                ),
                None => "no Sharpe ratio (flat or too few days)".to_string(),
            });
        }
        format!(
            "no edge detected at {:.0}%: {}",
            CONFIDENCE * 100.0,
            why.join("; ")
        )
    };
    Significance {
        days,
        mean_daily_pnl_usd: mean_daily,
        mean_daily_pnl_ci_usd: boot.mean,
        sharpe: daily_sharpe(daily).map(|s| s * YEAR_DAYS.sqrt()),
        sharpe_ci: boot.sharpe,
        null_seeds: null_net_pnl.len(),
        null_percentile,
        null_p_value,
        trials: trials.count,
        deflated_sharpe,
        edge_detected,
        verdict,
        warnings,
    }
}

struct Bootstrap {
    mean: Option<(f64, f64)>,
    sharpe: Option<(f64, f64)>,
}

/// Circular block bootstrap: resamples of `n` days made of runs of
/// consecutive days (wrapping at the end), which keeps short-range
/// dependence between days that a day-by-day resample would break.
fn bootstrap(daily: &[f64]) -> Bootstrap {
    let n = daily.len();
    if n < 2 {
        return Bootstrap {
            mean: None,
            sharpe: None,
        };
    }
    let block = (n as f64).cbrt().ceil() as usize;
    let mut rng = Rng::new(0x6e71_626f_6f74); // "nqboot": a fixed seed, the same bytes each run
    let mut means = Vec::with_capacity(RESAMPLES);
    let mut sharpes = Vec::with_capacity(RESAMPLES);
    let mut sample = Vec::with_capacity(n);
    for _ in 0..RESAMPLES {
        sample.clear();
        while sample.len() < n {
            let start = rng.below(n);
            for k in 0..block.min(n - sample.len()) {
                sample.push(daily[(start + k) % n]);
            }
        }
        means.push(mean(&sample).unwrap_or(0.0));
        if let Some(s) = daily_sharpe(&sample) {
            sharpes.push(s * YEAR_DAYS.sqrt());
        }
    }
    Bootstrap {
        mean: percentile_interval(&mut means),
        // A resample of identical days has no Sharpe ratio; with too many
        // of those the interval is not stated.
        sharpe: (sharpes.len() * 10 >= RESAMPLES * 9)
            .then(|| percentile_interval(&mut sharpes))
            .flatten(),
    }
}

/// The central `CONFIDENCE` interval of `values`.
fn percentile_interval(values: &mut [f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let tail = (1.0 - CONFIDENCE) / 2.0;
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some((at(tail), at(1.0 - tail)))
}

/// The deflated Sharpe ratio of daily P&L `daily` over `trials` candidates
/// (Bailey and López de Prado 2014, eq. 2 with the expected maximum of eq.
/// 3): `Φ((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR²))`,
/// daily (not annualised) Sharpe ratios.
pub fn deflated_sharpe(daily: &[f64], trials: Trials) -> Option<f64> {
    let t = daily.len();
    let sr = daily_sharpe(daily)?;
    if t < 3 {
        return None;
    }
    let normal = Normal::standard();
    let sr0 = if trials.count > 1 {
        let n = trials.count as f64;
        trials.sharpe_variance.sqrt()
            * ((1.0 - EULER_MASCHERONI) * normal.inverse_cdf(1.0 - 1.0 / n)
                + EULER_MASCHERONI * normal.inverse_cdf(1.0 - 1.0 / (n * std::f64::consts::E)))
    } else {
        0.0
    };
    let (skew, kurt) = shape(daily)?;
    let denominator = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr;
    if denominator <= 0.0 {
        return None;
    }
    Some(normal.cdf((sr - sr0) * ((t - 1) as f64).sqrt() / denominator.sqrt()))
}

/// Mean over (sample) standard deviation; `None` without a spread.
fn daily_sharpe(daily: &[f64]) -> Option<f64> {
    let sd = variance(daily)?.sqrt();
    (sd > 1e-12).then(|| mean(daily).unwrap_or(0.0) / sd)
}

fn mean(x: &[f64]) -> Option<f64> {
    (!x.is_empty()).then(|| x.iter().sum::<f64>() / x.len() as f64)
}

/// Sample variance (n - 1); `None` for fewer than two values.
fn variance(x: &[f64]) -> Option<f64> {
    if x.len() < 2 {
        return None;
    }
    let m = mean(x)?;
    Some(x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (x.len() - 1) as f64)
}

/// Skewness and (non-excess) kurtosis, population moments.
fn shape(x: &[f64]) -> Option<(f64, f64)> {
    let n = x.len() as f64;
    let m = mean(x)?;
    let m2 = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n;
    if m2 <= 0.0 {
        return None;
    }
    let m3 = x.iter().map(|v| (v - m).powi(3)).sum::<f64>() / n;
    let m4 = x.iter().map(|v| (v - m).powi(4)).sum::<f64>() / n;
    Some((m3 / m2.powf(1.5), m4 / (m2 * m2)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal_days(n: usize, mean: f64, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| mean + sd * rng.normal()).collect()
    }

    #[test]
    fn an_obvious_edge_is_detected_and_noise_is_not() {
        let edge = normal_days(60, 300.0, 500.0, 1);
        let null: Vec<f64> = (0..99)
            .map(|s| normal_days(60, -200.0, 500.0, 100 + s).iter().sum())
            .collect();
        let s = assess(&edge, &null, Trials::ONE);
        assert!(s.edge_detected, "{s:?}");
        let (lo, hi) = s.mean_daily_pnl_ci_usd.unwrap();
        assert!(lo > 0.0 && lo < 300.0 && hi > 300.0, "{lo} {hi}");
        assert!(
            s.verdict.starts_with("edge detected at 95%"),
            "{}",
            s.verdict
        );
        let flat = vec![0.0; 60];
        let s = assess(&flat, &null, Trials::ONE);
        assert!(
            !s.edge_detected,
            "a flat policy beats random but has no edge: {s:?}"
        );
        assert!(s.verdict.starts_with("no edge detected"), "{}", s.verdict);
    }

    #[test]
    fn few_days_are_flagged_and_no_null_is_said() {
        let s = assess(&normal_days(8, 100.0, 50.0, 3), &[], Trials::ONE);
        assert!(
            s.warnings.iter().any(|w| w.contains("only 8 days")),
            "{s:?}"
        );
        assert!(s.warnings.iter().any(|w| w.contains("null")), "{s:?}");
        assert!(!s.edge_detected, "no null, no verdict of an edge");
    }

    /// Many candidates make the same Sharpe ratio less convincing.
    #[test]
    fn the_deflated_sharpe_ratio_falls_with_the_number_of_trials() {
        let days = normal_days(120, 60.0, 500.0, 9);
        let one = deflated_sharpe(&days, Trials::ONE).unwrap();
        let many = deflated_sharpe(
            &days,
            Trials {
                count: 200,
                sharpe_variance: 0.01,
            },
        )
        .unwrap();
        assert!(one > many, "{one} {many}");
        assert!((0.0..=1.0).contains(&one) && (0.0..=1.0).contains(&many));
    }

    /// The false-positive rate of the verdict on results with no edge: daily
    /// P&L of mean zero (a policy on a random walk), against a null of
    /// random trading with costs, 400 times. At 95% it must stay near or
    /// below 5%; it is far below, since all three conditions must hold.
    #[test]
    fn the_verdicts_false_positive_rate_on_no_edge_is_at_most_five_percent() {
        let trials = 400;
        let mut detected = 0;
        for seed in 0..trials {
            let days = normal_days(40, 0.0, 400.0, 1_000 + seed);
            let null: Vec<f64> = (0..50)
                .map(|s| {
                    normal_days(40, -50.0, 400.0, 50_000 + seed * 50 + s)
                        .iter()
                        .sum()
                })
                .collect();
            detected += assess(&days, &null, Trials::ONE).edge_detected as u64;
        }
        let rate = detected as f64 / trials as f64;
        eprintln!("false-positive rate {rate:.4} ({detected} of {trials})");
        assert!(rate <= 0.05, "{rate}");
    }

    #[test]
    fn the_same_inputs_give_the_same_figures() {
        let days = normal_days(30, 10.0, 100.0, 5);
        assert_eq!(
            assess(&days, &[1.0, 2.0], Trials::ONE),
            assess(&days, &[1.0, 2.0], Trials::ONE)
        );
    }
}
