//! The engine: ticks (or bars) in, what happened out. It is the one loop
//! that evaluation and live execution share: bars from the [`BarBuilder`],
//! features from the [`FeatureEngine`], the action from the [`Policy`], and
//! everything about the account and the session (fills, brackets, the
//! session end, the drawdown, the mask) from the [`BarStepper`], which the
//! trainer's environments step too. The order of things at each input is
//! the stepper's: see [`crate::step`].
//!
//! Each call returns one [`Step`]: the bar it closed (with the account at
//! that close), the decision, the entry, the exits and a breach, and the
//! account after it. A refused input is an error, distinct from a step
//! without a decision.
//!
//! - **Ticks** ([`Engine::on_tick`]): a tick that reaches the open bar's end
//!   closes it; the closed bar is turned into features and, when the
//!   observation is ready and the bar lies in the session, into a decision
//!   made at the bar's end. The order that decision queues fills on the next
//!   tick, which is this very tick (it is the first one at or after the bar's
//!   end). A quiet market closes bars with [`Engine::flush`] (a clock).
//! - **Bars** ([`Engine::on_bar`]): the bar first runs through the simulator
//!   (a pending order fills at its open, brackets are checked over its range
//!   with the conservative rule), then closes as above.
//! - **Session end**: the session's last bar, or the first print, clock or
//!   bar at or after its end while something is held, yields one
//!   [`DecisionKind::SessionEnd`] decision with target position 0; with bars
//!   the position closes at the session's last close, with ticks on the next
//!   print within a bar of the end, or else at the last close. No position is
//!   held overnight (`tests/engine_session_end.rs` checks this on random
//!   streams of prints, gaps and clock calls).
//! - **Drawdown**: a trailing-drawdown breach liquidates and leaves only
//!   HOLD ([`DecisionKind::DrawdownBreached`]) until the session ends; the
//!   next session trades again, its drawdown measured from its own starting
//!   equity (a breach ends the episode; episodes are sessions, as in
//!   training). [`DrawdownScope::Engine`] makes a breach final instead.
//! - **Live fills** ([`Engine::on_fill`]): the simulator is a shadow of the
//!   real account; a fill report or position correction from the execution
//!   system overrides its position, so the next observation describes the
//!   position that really exists.
//! - **Idle time** ([`Engine::prepare_next_decision`]): between bars the
//!   engine can do the part of the next decision that is already known,
//!   which shortens the time from the closing tick to the decision.
//!
//! Nothing here allocates; an `Engine` is a plain struct of fixed size
//! (about 60 KiB, 36 KiB of it the prepared first layer) that can live on
//! the stack, in a static or in a box.

use core::fmt;

use nq_formats::obs::{MARKET_DIM, OBS_DIM_PHASE2, OBS_LAYOUT_V1};
use nq_formats::{Action, ActionSet, Bar, Instrument, SimConfig, Tick};

use crate::bars::{BarBuilder, TickRejected};
use crate::features::BAR_FEATURE_COUNT;
use crate::features::{BarInfo, BarRejected, FeatureConfig, FeatureConfigError, FeatureEngine};
use crate::policy::{Checkpoint, FirstLayerPrefix, Policy, PolicyError, PolicyScratch, Rng};
use crate::sim::{PositionSync, Simulator};
use crate::step::{BarStepper, Due};
use crate::ActionMask;

pub use crate::step::{Decision, DecisionKind, DrawdownScope, Step};

/// How the engine picks among the allowed actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// The most probable allowed action (evaluation and live default).
    Greedy,
    /// A draw from the masked softmax with a seeded generator.
    Sample { seed: u64 },
}

/// What the caller expects of the checkpoint, and how to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    /// Simulator settings; their instrument and bar length must match the checkpoint's.
    pub sim: SimConfig,
    pub sampling: Sampling,
    /// The action set the caller is prepared to execute; `None` accepts the
    /// checkpoint's.
    pub actions: Option<ActionSet>,
    pub drawdown: DrawdownScope,
    /// Entries get the ATR stop and target (SPEC 6). `false` leaves them
    /// without either, for a baseline that holds until the session ends
    /// (nq-eval's buy and hold); decisions then carry no bracket.
    pub brackets: bool,
}

impl EngineConfig {
    /// The settings the checkpoint was trained with, greedy decisions.
    pub fn from_policy(policy: &Policy<'_>) -> EngineConfig {
        EngineConfig {
            sim: policy.metadata().sim,
            sampling: Sampling::Greedy,
            actions: None,
            drawdown: DrawdownScope::Session,
            brackets: true,
        }
    }
}

/// Why an engine cannot be built. Each mismatch names both sides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EngineError {
    /// The checkpoint is malformed or does not match this runtime's layout.
    Policy(PolicyError),
    InstrumentMismatch {
        checkpoint: Instrument,
        engine: Instrument,
    },
    BarSecondsMismatch {
        checkpoint: u32,
        engine: u32,
    },
    ActionSetMismatch {
        checkpoint: ActionSet,
        engine: ActionSet,
    },
    /// A simulator setting is unusable (named).
    Sim(&'static str),
    Features(FeatureConfigError),
}

impl From<PolicyError> for EngineError {
    fn from(e: PolicyError) -> Self {
        EngineError::Policy(e)
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Policy(e) => write!(f, "{e}"),
            EngineError::InstrumentMismatch { checkpoint, engine } => write!(
                f,
                "instrument mismatch: the checkpoint was trained on {checkpoint}, the engine is set up for {engine}"
            ),
            EngineError::BarSecondsMismatch { checkpoint, engine } => write!(
                f,
                "bar length mismatch: the checkpoint uses {checkpoint} s bars, the engine {engine} s"
            ),
            EngineError::ActionSetMismatch { checkpoint, engine } => write!(
                f,
                "action set mismatch: the checkpoint outputs {} ({}), the engine expects {} ({})",
                checkpoint.metadata_value(),
                checkpoint.len(),
                engine.metadata_value(),
                engine.len()
            ),
            EngineError::Sim(field) => write!(f, "simulator setting `{field}` is invalid"),
            EngineError::Features(e) => write!(f, "feature settings: {e}"),
        }
    }
}

impl core::error::Error for EngineError {}

/// A fill or position report from the execution system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FillReport {
    pub ts_ns: i64,
    /// The position after the fill: -1, 0 or +1.
    pub position: i8,
    /// Average entry price of the position (ignored when flat).
    pub entry_price: f64,
    /// Working stop and target of the position, if the system holds them;
    /// `None` keeps the engine's own bracket.
    pub stop_price: Option<f64>,
    pub target_price: Option<f64>,
}

/// Why a fill report was refused; the engine's state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillRejected {
    /// `position` is not -1, 0 or +1 (the engine trades one contract).
    Position,
    /// A price is NaN, infinite or not positive.
    Price,
    /// The stop or target lies on the wrong side of the entry.
    Bracket,
}

impl fmt::Display for FillRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FillRejected::Position => "position must be -1, 0 or +1 (one contract)",
            FillRejected::Price => "fill prices must be finite and positive",
            FillRejected::Bracket => "stop or target on the wrong side of the entry",
        })
    }
}

impl core::error::Error for FillRejected {}

/// The runtime engine over one checkpoint.
pub struct Engine<'a> {
    policy: Policy<'a>,
    bars: BarBuilder,
    features: FeatureEngine,
    stepper: BarStepper,
    scratch: PolicyScratch,
    prefix: FirstLayerPrefix<'a>,
    obs: [f32; OBS_DIM_PHASE2],
    rng: Rng,
    sampling: Sampling,
    phase: u8,
}

/// How the action is chosen at a decision: by the policy, or by a baseline's
/// rule (`choose(mask, position)`).
type Chooser<'c> = Option<&'c mut dyn FnMut(ActionMask, i8) -> Action>;

impl<'a> Engine<'a> {
    /// Parses and validates `checkpoint` (a safetensors file in a buffer the
    /// caller keeps alive; 8-byte aligned for the fast path) and builds an
    /// engine with the settings it was trained with.
    // The error carries the offending tensor's name inline: without an
    // allocator there is nothing to box it into.
    #[allow(clippy::result_large_err)]
    pub fn from_checkpoint_bytes(checkpoint: &'a [u8]) -> Result<Engine<'a>, EngineError> {
        let policy =
            Policy::from_checkpoint(&Checkpoint::parse(checkpoint).map_err(PolicyError::from)?)?;
        let config = EngineConfig::from_policy(&policy);
        Engine::new(policy, config)
    }

    /// An engine over `policy` with `config`, refusing any mismatch between
    /// what the checkpoint was trained for and what the caller asks.
    #[allow(clippy::result_large_err)]
    pub fn new(policy: Policy<'a>, config: EngineConfig) -> Result<Engine<'a>, EngineError> {
        let meta = *policy.metadata();
        if meta.instrument != config.sim.instrument {
            return Err(EngineError::InstrumentMismatch {
                checkpoint: meta.instrument,
                engine: config.sim.instrument,
            });
        }
        if meta.bar_seconds != config.sim.bar_seconds {
            return Err(EngineError::BarSecondsMismatch {
                checkpoint: meta.bar_seconds,
                engine: config.sim.bar_seconds,
            });
        }
        if let Some(expected) = config.actions {
            if expected != meta.actions {
                return Err(EngineError::ActionSetMismatch {
                    checkpoint: meta.actions,
                    engine: expected,
                });
            }
        }
        let mut stepper = BarStepper::new(config.sim, config.drawdown, policy.n_actions())
            .map_err(|e| EngineError::Sim(e.0))?;
        if !config.brackets {
            stepper = stepper.without_brackets();
        }
        let layout = OBS_LAYOUT_V1.with_bar_seconds(config.sim.bar_seconds);
        let feature_config = FeatureConfig::from_layout(
            &layout,
            config.sim.session,
            config.sim.instrument.spec().tick_size,
        )
        .map_err(EngineError::Features)?;
        let features = FeatureEngine::new(feature_config).map_err(EngineError::Features)?;
        let seed = match config.sampling {
            Sampling::Greedy => 0,
            Sampling::Sample { seed } => seed,
        };
        Ok(Engine {
            policy,
            bars: BarBuilder::new(config.sim.bar_seconds),
            features,
            stepper,
            scratch: PolicyScratch::new(),
            prefix: FirstLayerPrefix::new(),
            obs: [0.0; OBS_DIM_PHASE2],
            rng: Rng::new(seed),
            sampling: config.sampling,
            phase: meta.phase,
        })
    }

    /// One trade print: what it did (the bar it closed and the decision made
    /// there, fills, exits, a breach). A bad tick (NaN or non-positive
    /// price, negative size, time going backwards) is refused with its
    /// reason and changes nothing.
    #[inline]
    pub fn on_tick(&mut self, tick: &Tick) -> Result<Step, TickRejected> {
        self.tick_inner(tick, None)
    }

    /// [`Engine::on_tick`] with the action chosen by `choose(mask, position)`
    /// instead of the policy (baselines in `nq-eval`: random valid actions,
    /// flat). Everything else, fills and P&L included, is the engine's own;
    /// a choice outside the mask becomes HOLD. The decision's probabilities
    /// are still the policy's.
    pub fn on_tick_with(
        &mut self,
        tick: &Tick,
        choose: &mut dyn FnMut(ActionMask, i8) -> Action,
    ) -> Result<Step, TickRejected> {
        self.tick_inner(tick, Some(choose))
    }

    /// One closed bar, for users who have bars rather than ticks. Refused
    /// (and nothing changes) if inconsistent or not later than the previous
    /// bar.
    pub fn on_bar(&mut self, bar: &Bar) -> Result<Step, BarRejected> {
        self.bar_inner(bar, None)
    }

    /// [`Engine::on_bar`] with the action chosen by `choose`, as in
    /// [`Engine::on_tick_with`].
    pub fn on_bar_with(
        &mut self,
        bar: &Bar,
        choose: &mut dyn FnMut(ActionMask, i8) -> Action,
    ) -> Result<Step, BarRejected> {
        self.bar_inner(bar, Some(choose))
    }

    /// A clock tick for a quiet market: closes the open bar if `now_ns` is at
    /// or after its end, and decides on it; at or after the end of a session
    /// something is still held from, ends that session (the market stopped
    /// before its end: an early close, an RTH-only feed).
    pub fn flush(&mut self, now_ns: i64) -> Step {
        self.stepper.begin();
        let closed = self.bars.flush(now_ns).and_then(|bar| self.close(bar));
        let due = self
            .stepper
            .on_clock(now_ns, closed.as_ref().map(|(b, i)| (b, i)));
        self.decide(due, None);
        self.stepper.settle_clock(now_ns);
        self.stepper.finish()
    }

    fn tick_inner(&mut self, tick: &Tick, choose: Chooser<'_>) -> Result<Step, TickRejected> {
        let closed = self.bars.push(tick)?;
        self.stepper.begin();
        let closed = closed.and_then(|bar| self.close(bar));
        let due = self
            .stepper
            .on_print(tick.ts_ns, closed.as_ref().map(|(b, i)| (b, i)));
        self.decide(due, choose);
        self.stepper.settle_print(tick);
        Ok(self.stepper.finish())
    }

    fn bar_inner(&mut self, bar: &Bar, choose: Chooser<'_>) -> Result<Step, BarRejected> {
        let info = self.features.on_bar(bar)?;
        self.stepper.begin();
        let due = self.stepper.on_bar(bar, &info);
        self.decide(due, choose);
        Ok(self.stepper.finish())
    }

    /// A bar the builder closed, into the features. The builder only closes
    /// consistent bars in time order, which the features accept.
    fn close(&mut self, bar: Bar) -> Option<(Bar, BarInfo)> {
        self.features.on_bar(&bar).ok().map(|info| (bar, info))
    }

    /// The decision the stepper asked for: the observation, the policy's
    /// probabilities and its (or the chooser's) action.
    fn decide(&mut self, due: Due, choose: Chooser<'_>) {
        let Due::Policy { mask } = due else { return };
        let view = self.stepper.position_view();
        let dim = self.policy.obs_dim();
        let position = view.side;
        // The buffer holds a phase-2 observation, and `dim` was checked
        // against the layout, so neither step can fail; were one to, the
        // decision is HOLD.
        let out = self
            .features
            .write_observation(&view, mask, self.phase, &mut self.obs)
            .ok()
            .and_then(|_| {
                self.policy
                    .forward_prepared(&self.obs[..dim], mask, &mut self.scratch, &mut self.prefix)
                    .ok()
            });
        let Some(out) = out else {
            self.stepper.act(Action::Hold, &[]);
            return;
        };
        let action = match (choose, self.sampling) {
            (Some(choose), _) => choose(out.mask(), position),
            (None, Sampling::Greedy) => out.argmax(),
            (None, Sampling::Sample { .. }) => out.sample(&mut self.rng),
        };
        self.stepper.act(action, out.probs());
    }

    /// The execution system's view of the position wins over the simulated
    /// one: the next observation, mask and decision start from it. A
    /// position it no longer has is closed at the last price (`EXTERNAL`),
    /// in the step's exits.
    pub fn on_fill(&mut self, fill: &FillReport) -> Result<Step, FillRejected> {
        if !(-1..=1).contains(&fill.position) {
            return Err(FillRejected::Position);
        }
        // Finite, positive and on the instrument's tick grid's range: a price
        // the simulator could not hold would be replaced by the last price.
        let sim = self.stepper.simulator();
        let ok = |p: f64| sim.holds_price(p);
        if fill.position != 0 {
            if !ok(fill.entry_price)
                || fill.stop_price.is_some_and(|p| !ok(p))
                || fill.target_price.is_some_and(|p| !ok(p))
            {
                return Err(FillRejected::Price);
            }
            let side = fill.position as f64;
            let wrong_stop = fill
                .stop_price
                .is_some_and(|s| (fill.entry_price - s) * side < 0.0);
            let wrong_target = fill
                .target_price
                .is_some_and(|t| (t - fill.entry_price) * side < 0.0);
            if wrong_stop || wrong_target {
                return Err(FillRejected::Bracket);
            }
        }
        self.stepper.begin();
        self.stepper.sync_position(&PositionSync {
            ts_ns: fill.ts_ns,
            side: fill.position,
            entry_price: fill.entry_price,
            stop_price: fill.stop_price,
            target_price: fill.target_price,
            atr: self.features.atr(),
        });
        Ok(self.stepper.finish())
    }

    /// Does ahead of time the part of the next decision that is already
    /// known: the policy's first layer over the 19 older bars of the next
    /// observation (208 of its 225 or 231 values; their feature rows never
    /// change once their bar has closed). Call it when idle, after acting on
    /// a decision; the next bar close then skips that work. It costs about
    /// 40% of a decision's time, spent here instead.
    ///
    /// Decisions are bit-identical with or without it: the prepared sums
    /// are used only if the observation really begins with the values they
    /// were computed from (a bar that brought no decision in between, say,
    /// makes them stale, and the decision then computes everything itself).
    /// [`Engine::prepared_decisions`] counts the decisions that used them.
    pub fn prepare_next_decision(&mut self) {
        let mut market = [0.0f32; MARKET_DIM];
        // The buffer is exactly the market part's size.
        if self.features.write_market(&mut market).is_ok() {
            // The oldest row drops out; the other 19 move one row older.
            self.policy
                .prepare_prefix(&market[BAR_FEATURE_COUNT..], &mut self.prefix);
        }
    }

    /// Policy decisions whose first layer started from sums done by
    /// [`Engine::prepare_next_decision`].
    pub fn prepared_decisions(&self) -> u64 {
        self.prefix.hits()
    }

    /// The data ran out (a backtest's end): closes any open position at the
    /// last price seen, with slippage and commission, as
    /// `ExitReason::EndOfData` at `ts_ns`, and drops a pending order.
    pub fn end_of_data(&mut self, ts_ns: i64) -> Step {
        self.stepper.begin();
        self.stepper.end_of_data(ts_ns);
        self.stepper.finish()
    }

    /// The observation of the last policy decision (phase 1: 225 floats,
    /// phase 2: 231), for checking that the live observation matches the
    /// trained one.
    pub fn observation(&self) -> &[f32] {
        &self.obs[..self.policy.obs_dim()]
    }

    pub fn policy(&self) -> &Policy<'a> {
        &self.policy
    }

    /// The simulated account (read only: what a step did is in its [`Step`]).
    pub fn simulator(&self) -> &Simulator {
        self.stepper.simulator()
    }

    pub fn features(&self) -> &FeatureEngine {
        &self.features
    }

    /// Policy decisions made so far.
    pub fn decision_count(&self) -> u64 {
        self.stepper.decision_count()
    }
}
