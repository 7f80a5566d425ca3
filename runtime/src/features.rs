//! The `nq-obs-v1` observation (SPEC section 5): market features per bar,
//! context and position-management features.
//!
//! Everything is incremental and O(1) per bar; [`compute_series`] runs the
//! same [`FeatureEngine`] over a whole series for the trainer, so training and
//! live observations are identical bit for bit. Arithmetic is `f64`, outputs
//! `f32`; every output is clipped to `[-clip, clip]` with NaN mapped to 0,
//! which keeps it finite for every input.
//!
//! # Indicators (periods from [`IndicatorParams`])
//! - True range uses the previous close (the bar's range for the first bar).
//!   ATR is Wilder's: the mean of the first `atr_period` true ranges, then
//!   `atr += (tr - atr) / atr_period`.
//! - EMAs of the close (fast, slow), the volume EMA and the slow ATR EMA use
//!   `alpha = 2 / (period + 1)`, seeded with the plain mean of their first
//!   `period` inputs. The slow ATR EMA takes ATR values only once the ATR has
//!   its full period.
//! - RSI is Wilder's (gains and losses smoothed with `1 / rsi_period`, seeded
//!   with their plain mean); the feature is `(avg_gain - avg_loss) /
//!   (avg_gain + avg_loss)` = `(RSI - 50) / 50`, 0 when both are 0.
//! - Every division by the ATR uses `max(ATR, atr_floor)` (one tick by
//!   default), so flat prices and zero-range bars stay finite.
//! - `log_volume_rel = ln(max(volume, 1) / max(volume EMA, 1))`: volume is in
//!   contracts, and a zero-volume bar reads as one contract.
//! - Session VWAP: volume-weighted typical price `(high + low + close) / 3`
//!   of the bars of the *anchor session*: the latest session of the configured
//!   [`SessionHours`] that started at or before the bar's start. It resets on
//!   the first bar of each new anchor session; bars outside the session hours
//!   (overnight bars under RTH) keep extending the last session's VWAP until
//!   the next session starts. With no volume yet, the plain mean of the
//!   typical prices stands in.
//! - Gaps (nights, weekends, halts) do not reset anything: the first bar after
//!   a gap returns its move against the last close before it.
//!
//! # Warm-up
//! A bar's row is *defined* once every indicator has its full seed:
//! `max(atr_period + atr_slow_period - 1, ema_slow, ema_fast, rsi_period + 1,
//! volume_period)` bars (113 under `nq-obs-v1`). The observation is ready
//! ([`FeatureEngine::is_ready`]) when all `window` rows are defined: after
//! `row_defined_after + window - 1` bars (132 under `nq-obs-v1`). Warm-up may
//! span sessions; the engine never forgets state on its own.
//!
//! # Session progress
//! A decision is made at the bar's close, `bar.ts_ns + bar length`. The
//! session is the bar's anchor session: `time_of_day` is the elapsed fraction
//! of it at that instant and `time_left` the rest, both in `[0, 1]`; outside
//! the session hours the session is over (1 and 0).

use crate::calendar::{Session, SessionCalendar};
use crate::{ActionMask, PositionView};
use nq_formats::obs::{IndicatorParams, ObsLayout, MARKET_DIM, OBS_LAYOUT_V1};
use nq_formats::{Action, Bar, SessionHours};

/// Market features per bar (`nq_formats::obs::BAR_FEATURES`).
pub const BAR_FEATURE_COUNT: usize = 11;
/// Bars in the market window.
pub const WINDOW: usize = 20;
/// Context features (`nq_formats::obs::CONTEXT_FEATURES`).
pub const CONTEXT_COUNT: usize = 5;
/// Phase-2 features (`nq_formats::obs::POSITION_MANAGEMENT_FEATURES`).
pub const POSITION_MANAGEMENT_COUNT: usize = 6;

/// One bar's market features, in `BAR_FEATURES` order.
pub type FeatureRow = [f32; BAR_FEATURE_COUNT];

const _: () = assert!(WINDOW * BAR_FEATURE_COUNT == MARKET_DIM);
const _: () = assert!(OBS_LAYOUT_V1.window == WINDOW);

/// What the features need to know besides the bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureConfig {
    pub params: IndicatorParams,
    pub bar_seconds: u32,
    pub session: SessionHours,
    /// Outputs are clipped to `[-clip, clip]`.
    pub clip: f64,
    /// Smallest ATR divided by, in points (the instrument's tick size).
    pub atr_floor: f64,
}

/// Why a [`FeatureConfig`] cannot drive the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureConfigError {
    /// The layout's window is not the compiled-in [`WINDOW`].
    Window {
        layout: usize,
        supported: usize,
    },
    /// The layout names a different number of bar features.
    BarFeatures {
        layout: usize,
        supported: usize,
    },
    ZeroPeriod,
    ZeroBarSeconds,
    /// `clip` or `atr_floor` is not finite and positive.
    BadScale,
}

impl core::fmt::Display for FeatureConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FeatureConfigError::Window { layout, supported } => {
                write!(
                    f,
                    "layout window is {layout} bars, the runtime supports {supported}"
                )
            }
            FeatureConfigError::BarFeatures { layout, supported } => write!(
                f,
                "layout has {layout} bar features, the runtime computes {supported}"
            ),
            FeatureConfigError::ZeroPeriod => f.write_str("an indicator period is 0"),
            FeatureConfigError::ZeroBarSeconds => f.write_str("bar length is 0 seconds"),
            FeatureConfigError::BadScale => {
                f.write_str("feature clip and ATR floor must be finite and positive")
            }
        }
    }
}

impl core::error::Error for FeatureConfigError {}

impl FeatureConfig {
    /// `nq-obs-v1` on the given session hours; `tick_size` is the ATR floor.
    pub const fn nq_obs_v1(session: SessionHours, tick_size: f64) -> FeatureConfig {
        FeatureConfig {
            params: OBS_LAYOUT_V1.params,
            bar_seconds: OBS_LAYOUT_V1.bar_seconds,
            session,
            clip: OBS_LAYOUT_V1.feature_clip as f64,
            atr_floor: tick_size,
        }
    }

    /// The configuration for a layout (its periods, bar length and clip).
    pub fn from_layout(
        layout: &ObsLayout,
        session: SessionHours,
        tick_size: f64,
    ) -> Result<FeatureConfig, FeatureConfigError> {
        if layout.window != WINDOW {
            return Err(FeatureConfigError::Window {
                layout: layout.window,
                supported: WINDOW,
            });
        }
        if layout.bar_features.len() != BAR_FEATURE_COUNT {
            return Err(FeatureConfigError::BarFeatures {
                layout: layout.bar_features.len(),
                supported: BAR_FEATURE_COUNT,
            });
        }
        let config = FeatureConfig {
            params: layout.params,
            bar_seconds: layout.bar_seconds,
            session,
            clip: layout.feature_clip as f64,
            atr_floor: tick_size,
        };
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), FeatureConfigError> {
        let p = &self.params;
        let periods = [
            p.atr_period,
            p.atr_slow_period,
            p.ema_fast_period,
            p.ema_slow_period,
            p.rsi_period,
            p.volume_period,
        ];
        if periods.contains(&0) {
            return Err(FeatureConfigError::ZeroPeriod);
        }
        if self.bar_seconds == 0 {
            return Err(FeatureConfigError::ZeroBarSeconds);
        }
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !positive(self.clip) || !positive(self.atr_floor) {
            return Err(FeatureConfigError::BadScale);
        }
        Ok(())
    }

    /// Bars after which a bar's feature row is fully defined (113 for v1).
    pub const fn row_defined_after(&self) -> u32 {
        let p = &self.params;
        let mut n = p.atr_period as u32 + p.atr_slow_period as u32 - 1;
        let others = [
            p.ema_slow_period as u32,
            p.ema_fast_period as u32,
            p.rsi_period as u32 + 1,
            p.volume_period as u32,
        ];
        let mut i = 0;
        while i < others.len() {
            if others[i] > n {
                n = others[i];
            }
            i += 1;
        }
        n
    }

    /// Bars needed before the first ready observation (132 for v1).
    pub const fn warmup_bars(&self) -> u32 {
        self.row_defined_after() + WINDOW as u32 - 1
    }

    pub const fn bar_ns(&self) -> i64 {
        nq_formats::market::bar_ns(self.bar_seconds)
    }
}

/// Why a bar was refused. The engine's state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarRejected {
    /// Non-finite or non-positive price, `low > open/close` or `high <
    /// open/close`, or a negative or non-finite volume.
    Inconsistent,
    /// Not later than the previous bar.
    NotAfterPrevious,
}

impl core::fmt::Display for BarRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            BarRejected::Inconsistent => "bar prices or volume are inconsistent",
            BarRejected::NotAfterPrevious => "bar is not later than the previous bar",
        })
    }
}

impl core::error::Error for BarRejected {}

/// Where the session stands at a decision.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SessionProgress {
    /// Elapsed fraction of the session at the bar's close, `[0, 1]`.
    pub elapsed: f64,
    /// Remaining fraction, `1 - elapsed`.
    pub remaining: f64,
    /// Bars of the configured length in the session (at least 1).
    pub session_bars: f64,
}

/// What the engine knows after a bar, for the simulator and the trainer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BarInfo {
    pub ts_ns: i64,
    pub close: f64,
    /// ATR after this bar, floored at `atr_floor`: the unit of every distance.
    pub atr: f64,
    /// The anchor session (see the module docs).
    pub session: Session,
    /// The bar starts inside the session hours.
    pub in_session: bool,
    /// In session, and it ends at or after the session end.
    pub is_last_bar: bool,
    pub progress: SessionProgress,
    /// This bar's feature row is fully defined.
    pub row_defined: bool,
    /// All `WINDOW` rows ending at this bar are defined: a decision may be made.
    pub ready: bool,
}

/// The caller's buffer is shorter than the observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferTooSmall {
    pub needed: usize,
    pub got: usize,
}

impl core::fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "buffer holds {} floats, {} needed",
            self.got, self.needed
        )
    }
}

impl core::error::Error for BufferTooSmall {}

/// A mean over the first `period` inputs, then an exponential average.
#[derive(Debug, Clone, Copy, PartialEq)]
struct SeededAverage {
    period: u32,
    alpha: f64,
    count: u32,
    value: f64,
}

impl SeededAverage {
    fn ema(period: u16) -> SeededAverage {
        SeededAverage::with_alpha(period, 2.0 / (period as f64 + 1.0))
    }

    fn wilder(period: u16) -> SeededAverage {
        SeededAverage::with_alpha(period, 1.0 / period as f64)
    }

    fn with_alpha(period: u16, alpha: f64) -> SeededAverage {
        SeededAverage {
            period: period as u32,
            alpha,
            count: 0,
            value: 0.0,
        }
    }

    #[inline]
    fn update(&mut self, x: f64) {
        if self.count < self.period {
            self.count += 1;
            self.value += (x - self.value) / self.count as f64;
        } else {
            self.value += self.alpha * (x - self.value);
        }
    }

    fn is_seeded(&self) -> bool {
        self.count >= self.period
    }
}

/// Incremental `nq-obs-v1` market features over a ring of the last
/// [`WINDOW`] rows. About 1 KiB; no allocation.
#[derive(Debug, Clone)]
pub struct FeatureEngine {
    config: FeatureConfig,
    calendar: SessionCalendar,
    atr: SeededAverage,
    atr_slow: SeededAverage,
    ema_fast: SeededAverage,
    ema_slow: SeededAverage,
    avg_gain: SeededAverage,
    avg_loss: SeededAverage,
    volume: SeededAverage,
    /// The anchor session and when the next one starts (recomputed only then).
    session: Session,
    next_session_start_ns: i64,
    vwap_price_volume: f64,
    vwap_volume: f64,
    vwap_typical_sum: f64,
    vwap_bars: f64,
    bars_seen: u64,
    last: BarInfo,
    rows: [FeatureRow; WINDOW],
    /// Index of the slot the next row goes to (the oldest row once full).
    next_slot: usize,
}

impl FeatureEngine {
    pub fn new(config: FeatureConfig) -> Result<FeatureEngine, FeatureConfigError> {
        config.validate()?;
        let p = config.params;
        Ok(FeatureEngine {
            config,
            calendar: SessionCalendar::new(config.session),
            atr: SeededAverage::wilder(p.atr_period),
            atr_slow: SeededAverage::ema(p.atr_slow_period),
            ema_fast: SeededAverage::ema(p.ema_fast_period),
            ema_slow: SeededAverage::ema(p.ema_slow_period),
            avg_gain: SeededAverage::wilder(p.rsi_period),
            avg_loss: SeededAverage::wilder(p.rsi_period),
            volume: SeededAverage::ema(p.volume_period),
            session: Session::default(),
            next_session_start_ns: i64::MIN,
            vwap_price_volume: 0.0,
            vwap_volume: 0.0,
            vwap_typical_sum: 0.0,
            vwap_bars: 0.0,
            bars_seen: 0,
            last: BarInfo::default(),
            rows: [[0.0; BAR_FEATURE_COUNT]; WINDOW],
            next_slot: 0,
        })
    }

    /// Forgets every bar (a new, unrelated series).
    pub fn reset(&mut self) {
        // The config was validated when `self` was built, so this succeeds.
        if let Ok(fresh) = FeatureEngine::new(self.config) {
            *self = fresh;
        }
    }

    pub const fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// Adds a closed bar and computes its feature row. A refused bar changes
    /// nothing.
    pub fn on_bar(&mut self, bar: &Bar) -> Result<BarInfo, BarRejected> {
        if !bar.is_consistent() {
            return Err(BarRejected::Inconsistent);
        }
        if self.bars_seen > 0 && bar.ts_ns <= self.last.ts_ns {
            return Err(BarRejected::NotAfterPrevious);
        }
        let has_previous = self.bars_seen > 0;
        let previous_close = self.last.close;
        let (open, high, low, close, volume) = (bar.open, bar.high, bar.low, bar.close, bar.volume);

        let range = high - low;
        let true_range = if has_previous {
            range
                .max((high - previous_close).abs())
                .max((low - previous_close).abs())
        } else {
            range
        };
        self.atr.update(true_range);
        if self.atr.is_seeded() {
            self.atr_slow.update(self.atr.value);
        }
        self.ema_fast.update(close);
        self.ema_slow.update(close);
        if has_previous {
            let change = close - previous_close;
            self.avg_gain.update(change.max(0.0));
            self.avg_loss.update((-change).max(0.0));
        }
        self.volume.update(volume);
        self.advance_session(bar.ts_ns);
        let typical = (high + low + close) / 3.0;
        self.vwap_price_volume += typical * volume;
        self.vwap_volume += volume;
        self.vwap_typical_sum += typical;
        self.vwap_bars += 1.0;
        let vwap = if self.vwap_volume > 0.0 {
            self.vwap_price_volume / self.vwap_volume
        } else {
            self.vwap_typical_sum / self.vwap_bars
        };

        let floor = self.config.atr_floor;
        let atr = floor_at(self.atr.value, floor);
        let per_atr = 1.0 / atr;
        let ret = if has_previous {
            (close - previous_close) * per_atr
        } else {
            0.0
        };
        let (upper_wick, lower_wick) = if range > 0.0 {
            (
                (high - open.max(close)) / range,
                (open.min(close) - low) / range,
            )
        } else {
            (0.0, 0.0)
        };
        let log_volume_rel = libm::log(volume.max(1.0) / self.volume.value.max(1.0));
        let (gain, loss) = (self.avg_gain.value, self.avg_loss.value);
        let rsi = if gain + loss > 0.0 {
            (gain - loss) / (gain + loss)
        } else {
            0.0
        };
        let log_atr_ratio = if self.atr_slow.count > 0 {
            libm::log(atr / floor_at(self.atr_slow.value, floor))
        } else {
            0.0
        };
        let clip = self.config.clip;
        let row: FeatureRow = [
            ret,
            range * per_atr,
            (close - open) * per_atr,
            upper_wick,
            lower_wick,
            log_volume_rel,
            (close - self.ema_fast.value) * per_atr,
            (close - self.ema_slow.value) * per_atr,
            (close - vwap) * per_atr,
            rsi,
            log_atr_ratio,
        ]
        .map(|x| clip_to_f32(x, clip));
        self.rows[self.next_slot] = row;
        self.next_slot = (self.next_slot + 1) % WINDOW;
        self.bars_seen += 1;

        let bar_ns = self.config.bar_ns();
        let session = self.session;
        let in_session = session.contains(bar.ts_ns);
        let decision_ns = bar.ts_ns.saturating_add(bar_ns);
        self.last = BarInfo {
            ts_ns: bar.ts_ns,
            close,
            atr,
            session,
            in_session,
            is_last_bar: in_session && session.is_last_bar(bar.ts_ns, bar_ns),
            progress: SessionProgress {
                elapsed: session.elapsed_fraction(decision_ns),
                remaining: session.remaining_fraction(decision_ns),
                session_bars: session.bar_count(bar_ns) as f64,
            },
            row_defined: self.bars_seen >= self.config.row_defined_after() as u64,
            ready: self.bars_seen >= self.config.warmup_bars() as u64,
        };
        Ok(self.last)
    }

    /// Moves the anchor session forward when `ts_ns` reaches the next
    /// session's start; resets the VWAP when it changes.
    #[inline]
    fn advance_session(&mut self, ts_ns: i64) {
        if self.bars_seen > 0 && ts_ns < self.next_session_start_ns {
            return;
        }
        let anchor = self.calendar.anchor_session(ts_ns);
        self.next_session_start_ns = self.calendar.next_session(&anchor).start_ns;
        if self.bars_seen == 0 || anchor.id != self.session.id {
            self.session = anchor;
            self.vwap_price_volume = 0.0;
            self.vwap_volume = 0.0;
            self.vwap_typical_sum = 0.0;
            self.vwap_bars = 0.0;
        }
    }

    /// All `WINDOW` rows are defined: observations may be used for decisions.
    pub fn is_ready(&self) -> bool {
        self.last.ready
    }

    pub const fn bars_seen(&self) -> u64 {
        self.bars_seen
    }

    /// The state after the last accepted bar (all zero before the first).
    pub const fn last_bar(&self) -> &BarInfo {
        &self.last
    }

    /// ATR after the last bar, floored at the ATR floor: stops and targets
    /// are placed in these units.
    pub const fn atr(&self) -> f64 {
        self.last.atr
    }

    /// The feature row of the last bar.
    pub fn latest_row(&self) -> &FeatureRow {
        &self.rows[(self.next_slot + WINDOW - 1) % WINDOW]
    }

    /// The 220 market features, oldest bar first. Rows not yet computed are
    /// zeros; use only when [`FeatureEngine::is_ready`].
    pub fn write_market(&self, out: &mut [f32]) -> Result<(), BufferTooSmall> {
        let got = out.len();
        let out = out.get_mut(..MARKET_DIM).ok_or(BufferTooSmall {
            needed: MARKET_DIM,
            got,
        })?;
        let (newer, older) = self.rows.split_at(self.next_slot);
        let (older, newer) = (older.as_flattened(), newer.as_flattened());
        let (out_older, out_newer) = out.split_at_mut(older.len());
        out_older.copy_from_slice(older);
        out_newer.copy_from_slice(newer);
        Ok(())
    }

    /// The 5 context features at the last bar's close, marking at its close.
    pub fn context(&self, position: &PositionView) -> [f32; CONTEXT_COUNT] {
        context_features(
            position,
            self.last.close,
            self.last.atr,
            &self.last.progress,
            self.config.clip,
        )
    }

    /// The 6 phase-2 features at the last bar's close.
    pub fn position_management(
        &self,
        position: &PositionView,
        mask: ActionMask,
    ) -> [f32; POSITION_MANAGEMENT_COUNT] {
        position_management_features(
            position,
            self.last.close,
            self.last.atr,
            mask,
            self.config.clip,
        )
    }

    /// The whole observation of a phase (1: 225 floats, 2: 231) into the
    /// front of `out`; returns its length.
    pub fn write_observation(
        &self,
        position: &PositionView,
        mask: ActionMask,
        phase: u8,
        out: &mut [f32],
    ) -> Result<usize, BufferTooSmall> {
        let needed = observation_len(phase);
        if out.len() < needed {
            return Err(BufferTooSmall {
                needed,
                got: out.len(),
            });
        }
        self.write_market(out)?;
        let context_end = MARKET_DIM + CONTEXT_COUNT;
        out[MARKET_DIM..context_end].copy_from_slice(&self.context(position));
        if phase >= 2 {
            out[context_end..needed].copy_from_slice(&self.position_management(position, mask));
        }
        Ok(needed)
    }
}

/// Observation length of a phase under `nq-obs-v1` (225 or 231).
pub const fn observation_len(phase: u8) -> usize {
    if phase >= 2 {
        MARKET_DIM + CONTEXT_COUNT + POSITION_MANAGEMENT_COUNT
    } else {
        MARKET_DIM + CONTEXT_COUNT
    }
}

/// `position_side, unrealized_atr, time_in_position, time_of_day, time_left`.
/// `atr` is the floored ATR ([`FeatureEngine::atr`]); flat gives zeros for the
/// position features.
pub fn context_features(
    position: &PositionView,
    mark_price: f64,
    atr: f64,
    progress: &SessionProgress,
    clip: f64,
) -> [f32; CONTEXT_COUNT] {
    let side = side_of(position);
    let (unrealized, time_in_position) = if side == 0.0 {
        (0.0, 0.0)
    } else {
        (
            (mark_price - position.entry_price) * side / atr,
            position.bars_held as f64 / progress.session_bars.max(1.0),
        )
    };
    [
        side,
        unrealized,
        time_in_position,
        progress.elapsed,
        progress.remaining,
    ]
    .map(|x| clip_to_f32(x, clip))
}

/// `can_sl_to_be, can_trail_tighten, can_trail_loosen` (from the simulator's
/// mask), then `stop_distance_atr = (mark - stop) * side / ATR` (positive
/// while the stop is on the losing side), `target_distance_atr = (target -
/// mark) * side / ATR` and `best_excursion_atr = (best - entry) * side / ATR`;
/// the distances are 0 when flat.
pub fn position_management_features(
    position: &PositionView,
    mark_price: f64,
    atr: f64,
    mask: ActionMask,
    clip: f64,
) -> [f32; POSITION_MANAGEMENT_COUNT] {
    let flag = |a: Action| if mask.allows(a) { 1.0 } else { 0.0 };
    let side = side_of(position);
    let distances = if side == 0.0 {
        [0.0; 3]
    } else {
        [
            (mark_price - position.stop_price) * side / atr,
            (position.target_price - mark_price) * side / atr,
            (position.best_price - position.entry_price) * side / atr,
        ]
    };
    [
        flag(Action::SlToBe),
        flag(Action::TrailTighten),
        flag(Action::TrailLoosen),
        distances[0],
        distances[1],
        distances[2],
    ]
    .map(|x| clip_to_f32(x, clip))
}

/// Runs one [`FeatureEngine`] over `bars` (the same code as live use):
/// `rows` receives each bar's 11 features (`bars.len() * 11` floats,
/// bar-major), `info` each bar's [`BarInfo`]. The observation window of bar
/// `i` is then the contiguous slice [`market_window`]`(rows, i)`.
pub fn compute_series(
    config: &FeatureConfig,
    bars: &[Bar],
    rows: &mut [f32],
    info: &mut [BarInfo],
) -> Result<(), SeriesError> {
    let needed = bars.len().saturating_mul(BAR_FEATURE_COUNT);
    if rows.len() < needed || info.len() < bars.len() {
        return Err(SeriesError::BufferTooSmall(BufferTooSmall {
            needed,
            got: rows.len().min(info.len().saturating_mul(BAR_FEATURE_COUNT)),
        }));
    }
    let mut engine = FeatureEngine::new(*config).map_err(SeriesError::Config)?;
    for (index, ((bar, row), bar_info)) in bars
        .iter()
        .zip(rows.chunks_exact_mut(BAR_FEATURE_COUNT))
        .zip(info.iter_mut())
        .enumerate()
    {
        *bar_info = engine
            .on_bar(bar)
            .map_err(|reason| SeriesError::Bar { index, reason })?;
        row.copy_from_slice(engine.latest_row());
    }
    Ok(())
}

/// The 220 market features of bar `index` from [`compute_series`]'s rows
/// (`None` for the first `WINDOW - 1` bars or past the end).
pub fn market_window(rows: &[f32], index: usize) -> Option<&[f32]> {
    let end = index.checked_add(1)?.checked_mul(BAR_FEATURE_COUNT)?;
    let start = end.checked_sub(MARKET_DIM)?;
    rows.get(start..end)
}

/// Why [`compute_series`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeriesError {
    Config(FeatureConfigError),
    BufferTooSmall(BufferTooSmall),
    /// Bar `index` of the series was refused.
    Bar {
        index: usize,
        reason: BarRejected,
    },
}

impl core::fmt::Display for SeriesError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SeriesError::Config(e) => write!(f, "feature config: {e}"),
            SeriesError::BufferTooSmall(e) => write!(f, "series output: {e}"),
            SeriesError::Bar { index, reason } => write!(f, "bar {index}: {reason}"),
        }
    }
}

impl core::error::Error for SeriesError {}

fn side_of(position: &PositionView) -> f64 {
    position.side.signum() as f64
}

/// `max(x, floor)`, with NaN reading as the floor.
#[inline]
fn floor_at(x: f64, floor: f64) -> f64 {
    if x >= floor {
        x
    } else {
        floor
    }
}

#[inline]
fn clip_to_f32(x: f64, clip: f64) -> f32 {
    if x.is_nan() {
        0.0
    } else {
        x.clamp(-clip, clip) as f32
    }
}
