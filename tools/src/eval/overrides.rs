//! Command-line overrides of a checkpoint's simulator settings, shared by
//! `nq-eval` and `nq-signal` so both tools build the same engine from the
//! same flags.

use nq_formats::{Instrument, SessionHours};
use nq_runtime::engine::{DrawdownScope, EngineConfig, Sampling};

use crate::checkpoint_file::CheckpointFile;
use crate::{Error, Result};

/// The largest `--commission` taken, in dollars per contract per side: more
/// is a typing slip, and far more would overflow the P&L to infinity.
pub const MAX_COMMISSION_USD: f64 = 1_000.0;

/// The largest `--slippage-ticks` taken.
pub const MAX_SLIPPAGE_TICKS: f64 = 1_000.0;

/// Simulator settings that replace the checkpoint's own; `None` keeps it.
/// The numbers take a leading minus, so that `--commission -1` meets the
/// range check's message rather than clap's "unexpected argument".
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct SimOverrides {
    /// Commission per contract per side, in dollars (0 to 1000).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub commission: Option<f64>,
    /// Slippage per market fill, in whole ticks (0 to 1000).
    #[arg(long, value_name = "TICKS", allow_negative_numbers = true)]
    pub slippage_ticks: Option<f64>,
    /// Session hours in New York time, e.g. 09:30-16:00, or RTH / GLOBEX.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub session: Option<String>,
    /// Trailing maximum drawdown in dollars that ends trading (0: no limit).
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    pub drawdown_limit: Option<f64>,
    /// What a drawdown breach ends: the session (SPEC 6; the next session
    /// trades again, its drawdown measured from its own start) or
    /// everything after it (engine).
    #[arg(long, value_name = "SCOPE", value_parser = ["session", "engine"])]
    pub drawdown_scope: Option<String>,
    /// Instrument to simulate (must match the checkpoint's).
    #[arg(long, value_name = "SYMBOL")]
    pub instrument: Option<String>,
}

impl SimOverrides {
    /// The checkpoint's own settings with these overrides, greedy decisions.
    /// An instrument that differs from the checkpoint's is accepted here and
    /// refused when the engine is built, naming both sides.
    pub fn engine_config(&self, ckpt: &CheckpointFile) -> Result<EngineConfig> {
        let mut config = EngineConfig::from_policy(&ckpt.policy()?);
        let sim = &mut config.sim;
        if let Some(c) = self.commission {
            sim.commission_per_side = commission(c)?;
        }
        if let Some(s) = self.slippage_ticks {
            sim.slippage_ticks = slippage_ticks(s)?;
        }
        if let Some(d) = self.drawdown_limit {
            // The checkpoint format reads a negative limit as "none"; typed
            // on a command line it is more likely a sign slip, so it is
            // refused here, as the C ABI's options refuse it.
            if !(d.is_finite() && d >= 0.0) {
                return Err(Error::Usage(format!(
                    "--drawdown-limit {d}: must be a number >= 0 (0 disables the limit)"
                )));
            }
            sim.max_drawdown = d;
        }
        if let Some(s) = &self.session {
            // The one parser of session text; the C ABI's options use it too.
            sim.session = SessionHours::parse(s).ok_or_else(|| {
                Error::Usage(format!(
                    "--session {s:?}: expected HH:MM-HH:MM, RTH or GLOBEX"
                ))
            })?;
        }
        if let Some(i) = &self.instrument {
            sim.instrument = Instrument::from_symbol(&i.to_ascii_uppercase())
                .ok_or_else(|| Error::Usage(format!("--instrument {i:?}: unknown symbol")))?;
        }
        config.drawdown = match self.drawdown_scope.as_deref() {
            Some("engine") => DrawdownScope::Engine,
            _ => DrawdownScope::Session,
        };
        config.sampling = Sampling::Greedy;
        Ok(config)
    }
}

/// A `--commission` the simulator can work with; the checkpoint's own is
/// checked by the engine, which blames the checkpoint, not the flag.
fn commission(usd: f64) -> Result<f64> {
    let problem = if !usd.is_finite() {
        "must be a finite number of dollars"
    } else if usd < 0.0 {
        "must be >= 0"
    } else if usd > MAX_COMMISSION_USD {
        "must be at most 1000 (dollars per contract per side)"
    } else {
        // -0 would print as "-0.00" in every commission column.
        return Ok(usd + 0.0);
    };
    Err(Error::Usage(format!("--commission {usd}: {problem}")))
}

/// A `--slippage-ticks` the simulator applies as given: fills are on the
/// tick grid, so it would round a fraction up to the next whole tick.
fn slippage_ticks(ticks: f64) -> Result<f64> {
    let problem = if !ticks.is_finite() {
        "must be a finite whole number of ticks"
    } else if ticks < 0.0 {
        "must be >= 0"
    } else if ticks.fract() != 0.0 {
        "slippage is in whole ticks (fills are on the tick grid); give a whole number"
    } else if ticks > MAX_SLIPPAGE_TICKS {
        "must be at most 1000 ticks"
    } else {
        return Ok(ticks);
    };
    Err(Error::Usage(format!("--slippage-ticks {ticks}: {problem}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_and_slippage_flags_are_checked_here() {
        for ok in [0.0, 2.5, MAX_COMMISSION_USD] {
            assert_eq!(commission(ok).unwrap(), ok);
        }
        for (bad, says) in [
            (f64::NAN, "finite"),
            (f64::INFINITY, "finite"),
            (-1.0, ">= 0"),
            (1e308, "at most 1000"),
        ] {
            let e = commission(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(
                e.to_string().contains("--commission") && e.to_string().contains(says),
                "{e}"
            );
        }
        for ok in [0.0, 1.0, 3.0, MAX_SLIPPAGE_TICKS] {
            assert_eq!(slippage_ticks(ok).unwrap(), ok);
        }
        for (bad, says) in [
            (f64::NAN, "finite"),
            (-1.0, ">= 0"),
            (0.5, "whole ticks"),
            (2.25, "whole ticks"),
            (1e9, "at most 1000"),
        ] {
            let e = slippage_ticks(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(
                e.to_string().contains("--slippage-ticks") && e.to_string().contains(says),
                "{e}"
            );
        }
    }
}
