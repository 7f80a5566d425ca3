//! The observation layout `nq-obs-v1` (SPEC section 5).
//!
//! This module only *describes* the observation: names, order, window, bar
//! length and indicator parameters, and a stable hash of that description. The
//! runtime fills it in; checkpoints carry the name and hash, and the runtime
//! refuses a checkpoint whose hash differs from its own.
//!
//! Order of the vector (phase 1 = 225 floats, phase 2 = 231):
//! 1. `window` x 11 market features, bar-major, oldest bar first
//!    (`[bar t-19: f0..f10, bar t-18: f0..f10, ..., bar t: f0..f10]`);
//! 2. the 5 context features;
//! 3. phase 2 only: the 3 validity flags, then the 3 position-management features.

/// Per-bar market features, in order. All are scale-free: price distances are
/// divided by the ATR, so the same policy reads NQ at 4,000 or 20,000.
pub const BAR_FEATURES: [&str; 11] = [
    // (close - previous close) / ATR
    "ret_atr",
    // (high - low) / ATR
    "range_atr",
    // (close - open) / ATR
    "body_atr",
    // (high - max(open, close)) / (high - low), 0 for a zero-range bar
    "upper_wick",
    // (min(open, close) - low) / (high - low), 0 for a zero-range bar
    "lower_wick",
    // ln(volume / EMA of volume)
    "log_volume_rel",
    // (close - fast EMA) / ATR
    "ema_fast_dist_atr",
    // (close - slow EMA) / ATR
    "ema_slow_dist_atr",
    // (close - session VWAP) / ATR
    "vwap_dist_atr",
    // (RSI - 50) / 50, in [-1, 1]
    "rsi",
    // ln(ATR / slow EMA of ATR): volatility regime
    "log_atr_ratio",
];

/// Context features, in order.
pub const CONTEXT_FEATURES: [&str; 5] = [
    // -1 short, 0 flat, +1 long
    "position_side",
    // unrealised P&L in ATRs (price move times side / ATR)
    "unrealized_atr",
    // bars in position / session bars
    "time_in_position",
    // elapsed fraction of the session, [0, 1]
    "time_of_day",
    // remaining fraction of the session, [0, 1]
    "time_left",
];

/// Phase-2 additions: three validity flags (0/1), then three distances in ATRs.
pub const POSITION_MANAGEMENT_FEATURES: [&str; 6] = [
    "can_sl_to_be",
    "can_trail_tighten",
    "can_trail_loosen",
    "stop_distance_atr",
    "target_distance_atr",
    "best_excursion_atr",
];

/// Indicator periods, in bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IndicatorParams {
    pub atr_period: u16,
    pub atr_slow_period: u16,
    pub ema_fast_period: u16,
    pub ema_slow_period: u16,
    pub rsi_period: u16,
    pub volume_period: u16,
}

/// The description of an observation vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ObsLayout {
    pub name: &'static str,
    /// Closed bars in the market window.
    pub window: usize,
    pub bar_seconds: u32,
    pub params: IndicatorParams,
    pub bar_features: &'static [&'static str],
    pub context_features: &'static [&'static str],
    pub position_management_features: &'static [&'static str],
    /// Every raw feature is clipped to `[-feature_clip, feature_clip]` before
    /// normalisation, which is what keeps it finite for every input.
    pub feature_clip: f32,
}

/// `nq-obs-v1` on 1-minute bars.
pub const OBS_LAYOUT_V1: ObsLayout = ObsLayout {
    name: "nq-obs-v1",
    window: 20,
    bar_seconds: 60,
    params: IndicatorParams {
        atr_period: 14,
        atr_slow_period: 100,
        ema_fast_period: 9,
        ema_slow_period: 21,
        rsi_period: 14,
        volume_period: 20,
    },
    bar_features: &BAR_FEATURES,
    context_features: &CONTEXT_FEATURES,
    position_management_features: &POSITION_MANAGEMENT_FEATURES,
    feature_clip: 10.0,
};

/// Observation size of phase 1 under `nq-obs-v1`.
pub const OBS_DIM_PHASE1: usize = 225;
/// Observation size of phase 2 under `nq-obs-v1`.
pub const OBS_DIM_PHASE2: usize = 231;
/// Market features under `nq-obs-v1` (20 bars x 11).
pub const MARKET_DIM: usize = 220;

/// What one position of the observation vector holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObsFeature {
    /// Bar feature `feature` of the bar `lag` bars before the latest closed one.
    Market {
        lag: usize,
        feature: &'static str,
    },
    Context(&'static str),
    PositionManagement(&'static str),
}

impl core::fmt::Display for ObsFeature {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ObsFeature::Market { lag, feature } => write!(f, "{feature}[t-{lag}]"),
            ObsFeature::Context(name) | ObsFeature::PositionManagement(name) => f.write_str(name),
        }
    }
}

impl ObsLayout {
    pub const fn market_dim(&self) -> usize {
        self.window * self.bar_features.len()
    }

    /// Observation size for a phase (1 or 2).
    pub const fn obs_dim(&self, phase: u8) -> usize {
        let base = self.market_dim() + self.context_features.len();
        if phase >= 2 {
            base + self.position_management_features.len()
        } else {
            base
        }
    }

    /// The same layout on bars of another length (a different hash).
    pub const fn with_bar_seconds(mut self, bar_seconds: u32) -> ObsLayout {
        self.bar_seconds = bar_seconds;
        self
    }

    /// What position `index` of a phase-2 vector holds (phase 1 is its prefix).
    pub fn feature(&self, index: usize) -> Option<ObsFeature> {
        let per_bar = self.bar_features.len();
        if index < self.market_dim() {
            let bar = index / per_bar;
            return Some(ObsFeature::Market {
                lag: self.window - 1 - bar,
                feature: self.bar_features[index % per_bar],
            });
        }
        let i = index - self.market_dim();
        if i < self.context_features.len() {
            return Some(ObsFeature::Context(self.context_features[i]));
        }
        let i = i - self.context_features.len();
        self.position_management_features
            .get(i)
            .map(|n| ObsFeature::PositionManagement(n))
    }

    /// FNV-1a (64-bit) over a canonical encoding of everything that changes what
    /// the numbers mean: name, window, bar length, indicator periods, clip and
    /// every feature name in order. Stable across platforms and releases.
    pub fn hash(&self) -> u64 {
        let mut h = crate::hash::Fnv1a::new();
        h.str(self.name);
        h.u64(self.window as u64);
        h.u64(self.bar_seconds as u64);
        let p = &self.params;
        for v in [
            p.atr_period,
            p.atr_slow_period,
            p.ema_fast_period,
            p.ema_slow_period,
            p.rsi_period,
            p.volume_period,
        ] {
            h.u64(v as u64);
        }
        h.u64(self.feature_clip.to_bits() as u64);
        for group in [
            self.bar_features,
            self.context_features,
            self.position_management_features,
        ] {
            h.u64(group.len() as u64);
            for name in group {
                h.str(name);
            }
        }
        h.finish()
    }

    /// The hash as the 16 lower-case hex digits stored in checkpoints.
    pub fn hash_hex(&self) -> HashHex {
        HashHex::new(self.hash())
    }
}

/// A 64-bit hash rendered as 16 lower-case hex digits, without allocation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HashHex([u8; 16]);

impl HashHex {
    pub fn new(value: u64) -> HashHex {
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            let nibble = (value >> (60 - 4 * i)) & 0xf;
            *byte = b"0123456789abcdef"[nibble as usize];
        }
        HashHex(out)
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Parses 16 hex digits (either case).
    pub fn parse(s: &str) -> Option<u64> {
        if s.len() != 16 {
            return None;
        }
        u64::from_str_radix(s, 16).ok()
    }
}

impl core::fmt::Display for HashHex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl core::fmt::Debug for HashHex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions() {
        assert_eq!(OBS_LAYOUT_V1.market_dim(), MARKET_DIM);
        assert_eq!(OBS_LAYOUT_V1.obs_dim(1), OBS_DIM_PHASE1);
        assert_eq!(OBS_LAYOUT_V1.obs_dim(2), OBS_DIM_PHASE2);
    }

    #[test]
    fn feature_index_map() {
        let l = OBS_LAYOUT_V1;
        assert_eq!(
            l.feature(0),
            Some(ObsFeature::Market {
                lag: 19,
                feature: "ret_atr"
            })
        );
        assert_eq!(
            l.feature(219),
            Some(ObsFeature::Market {
                lag: 0,
                feature: "log_atr_ratio"
            })
        );
        assert_eq!(l.feature(220), Some(ObsFeature::Context("position_side")));
        assert_eq!(l.feature(224), Some(ObsFeature::Context("time_left")));
        assert_eq!(
            l.feature(225),
            Some(ObsFeature::PositionManagement("can_sl_to_be"))
        );
        assert_eq!(
            l.feature(230),
            Some(ObsFeature::PositionManagement("best_excursion_atr"))
        );
        assert_eq!(l.feature(231), None);
    }

    /// Golden: the hash is a contract stored in every checkpoint. If this fails,
    /// the layout changed: give it a new name instead of editing `nq-obs-v1`.
    #[test]
    fn layout_hash_is_stable() {
        assert_eq!(OBS_LAYOUT_V1.hash_hex().as_str(), GOLDEN_V1_HASH);
        assert_ne!(
            OBS_LAYOUT_V1.with_bar_seconds(300).hash(),
            OBS_LAYOUT_V1.hash()
        );
        let mut other = OBS_LAYOUT_V1;
        other.params.rsi_period = 7;
        assert_ne!(other.hash(), OBS_LAYOUT_V1.hash());
    }

    const GOLDEN_V1_HASH: &str = "3bb9cfa2cf4f4097";

    #[test]
    fn hash_hex_round_trips() {
        for v in [0u64, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            assert_eq!(HashHex::parse(HashHex::new(v).as_str()), Some(v));
        }
        assert_eq!(HashHex::parse("xyz"), None);
    }
}
