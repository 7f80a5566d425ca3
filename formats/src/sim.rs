//! Simulator settings (SPEC section 6). A checkpoint records the settings it was
//! trained with under `sim.*`; evaluation uses them unless the user overrides.

use crate::{Instrument, SessionHours};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimConfig {
    pub instrument: Instrument,
    /// Bar length in seconds (60 for the 1-minute bars the layout was designed for).
    pub bar_seconds: u32,
    pub session: SessionHours,
    /// Adverse slippage applied to every market fill (entries, exits, stops), in ticks.
    pub slippage_ticks: f64,
    /// Commission per contract per side, in dollars.
    pub commission_per_side: f64,
    /// Initial stop distance, in ATRs from the entry price.
    pub stop_atr: f64,
    /// Initial target distance, in ATRs from the entry price.
    pub target_atr: f64,
    /// SL_TO_BE is valid once the open profit reaches this many ATRs.
    pub breakeven_trigger_atr: f64,
    /// TRAIL_TIGHTEN / TRAIL_LOOSEN move the stop by this many ATRs.
    pub trail_step_atr: f64,
    /// TRAIL_TIGHTEN is valid while the new stop stays at least this many ATRs from price.
    pub trail_min_distance_atr: f64,
    /// TRAIL_LOOSEN is valid while the new stop stays within this many ATRs of price.
    pub trail_max_distance_atr: f64,
    pub starting_balance: f64,
    /// Trailing drawdown from the equity high-water mark that ends the episode;
    /// zero or negative disables it.
    pub max_drawdown: f64,
}

impl SimConfig {
    pub const fn default_for(instrument: Instrument) -> SimConfig {
        SimConfig {
            instrument,
            bar_seconds: 60,
            session: SessionHours::RTH,
            slippage_ticks: 1.0,
            commission_per_side: 2.50,
            stop_atr: 1.5,
            target_atr: 3.0,
            breakeven_trigger_atr: 1.0,
            trail_step_atr: 0.5,
            trail_min_distance_atr: 0.5,
            trail_max_distance_atr: 3.0,
            starting_balance: 50_000.0,
            max_drawdown: 2_500.0,
        }
    }

    /// The bar length in nanoseconds.
    pub const fn bar_ns(&self) -> i64 {
        crate::market::bar_ns(self.bar_seconds)
    }

    pub fn drawdown_limit(&self) -> Option<f64> {
        (self.max_drawdown > 0.0).then_some(self.max_drawdown)
    }

    /// Checks the settings a simulator cannot work with, naming the first bad field.
    pub fn validate(&self) -> Result<(), &'static str> {
        let nonneg = |x: f64| x.is_finite() && x >= 0.0;
        let pos = |x: f64| x.is_finite() && x > 0.0;
        if self.bar_seconds == 0 || 86_400 % self.bar_seconds != 0 {
            return Err("bar_seconds (must divide a day)");
        }
        if !nonneg(self.slippage_ticks) {
            return Err("slippage_ticks");
        }
        if !nonneg(self.commission_per_side) {
            return Err("commission_per_side");
        }
        if !pos(self.stop_atr) {
            return Err("stop_atr");
        }
        if !pos(self.target_atr) {
            return Err("target_atr");
        }
        if !nonneg(self.breakeven_trigger_atr) {
            return Err("breakeven_trigger_atr");
        }
        if !pos(self.trail_step_atr) {
            return Err("trail_step_atr");
        }
        if !nonneg(self.trail_min_distance_atr) {
            return Err("trail_min_distance_atr");
        }
        if !(pos(self.trail_max_distance_atr)
            && self.trail_max_distance_atr > self.trail_min_distance_atr)
        {
            return Err("trail_max_distance_atr (must exceed trail_min_distance_atr)");
        }
        if !pos(self.starting_balance) {
            return Err("starting_balance");
        }
        if !self.max_drawdown.is_finite() {
            return Err("max_drawdown");
        }
        if self.session.start_minute > 24 * 60 || self.session.end_minute > 24 * 60 {
            return Err("session");
        }
        Ok(())
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig::default_for(Instrument::Nq)
    }
}
