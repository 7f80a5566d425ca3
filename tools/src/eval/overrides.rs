//! Command-line overrides of a checkpoint's simulator settings, shared by
//! `nq-eval` and `nq-signal` so both tools build the same engine from the
//! same flags.

use nq_formats::{Instrument, SessionHours};
use nq_runtime::engine::{EngineConfig, Sampling};

use crate::checkpoint_file::CheckpointFile;
use crate::{Error, Result};

/// Simulator settings that replace the checkpoint's own; `None` keeps it.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct SimOverrides {
    /// Commission per contract per side, in dollars.
    #[arg(long, value_name = "USD")]
    pub commission: Option<f64>,
    /// Slippage per market fill, in ticks.
    #[arg(long, value_name = "TICKS")]
    pub slippage_ticks: Option<f64>,
    /// Session hours in New York time, e.g. 09:30-16:00, or RTH / GLOBEX.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub session: Option<String>,
    /// Trailing maximum drawdown in dollars that ends trading (0: no limit).
    #[arg(long, value_name = "USD")]
    pub drawdown_limit: Option<f64>,
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
            sim.commission_per_side = c;
        }
        if let Some(s) = self.slippage_ticks {
            sim.slippage_ticks = s;
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
        config.sampling = Sampling::Greedy;
        Ok(config)
    }
}
