//! The engine: ticks (or bars) in, decisions out. It is the one loop that
//! evaluation and live execution share: bars from the [`BarBuilder`], features
//! from the [`FeatureEngine`], the position and the mask from the
//! [`Simulator`], the action from the [`Policy`].
//!
//! # Sequence
//! - **Ticks** ([`Engine::on_tick`]): a tick that reaches the open bar's end
//!   closes it; the closed bar is turned into features and, when the
//!   observation is ready and the bar lies in the session, into a decision
//!   made at the bar's end. The order that decision queues fills on the next
//!   tick, which is this very tick (it is the first one at or after the bar's
//!   end); then the tick runs through the simulator's bracket and drawdown
//!   checks. A quiet market closes bars with [`Engine::flush`] (a clock).
//! - **Bars** ([`Engine::on_bar`]): the bar first runs through the simulator
//!   (a pending order fills at its open, brackets are checked over its range
//!   with the conservative rule), then closes as above.
//! - **Session end**: the last bar of the session yields a
//!   [`DecisionKind::SessionEnd`] decision with target position 0; with bars
//!   the position closes at that bar's close, with ticks at the next tick.
//!   When the market stops early (an early close; RTH-only data with no
//!   print in the session's last minute) the session's last *traded* bar
//!   ends it instead: with ticks, the bar whose closing print (or clock)
//!   comes at or after the session end; with bars, the last bar before one
//!   that starts past the session end. And when no print comes within a bar
//!   after the session end (RTH-only ticks, early closes), the position
//!   closes at that bar's close too, rather than at the next session's
//!   first print. An entry decided on a clock-closed bar is dropped if its
//!   print comes only after the session end. Live, where the market stopped
//!   before the session end no bar closes to end it: a clock
//!   ([`Engine::flush`]) past the end, with no bar open and a position or
//!   order held, gives the `SessionEnd` decision instead, and a bar later
//!   closes the simulated position as the next print would. So every trade
//!   opens inside its session and is closed less than one bar after its
//!   end: no position is held overnight (`tests/engine_session_end.rs`
//!   checks this on random streams of prints, gaps and clock calls).
//! - **Drawdown**: a trailing-drawdown breach liquidates and leaves only
//!   HOLD ([`DecisionKind::DrawdownBreached`]) until the session ends; the
//!   next session trades again, its drawdown measured from its own starting
//!   equity (SPEC 6: a breach ends the episode; episodes are sessions, as in
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
use crate::features::{FeatureConfig, FeatureConfigError, FeatureEngine};
use crate::policy::{
    Checkpoint, FirstLayerPrefix, Policy, PolicyError, PolicyScratch, Rng, MAX_ACTIONS,
};
use crate::sim::{ExitReason, PendingOrder, PositionSync, SimEvents, Simulator, TradeRecord};
use crate::ActionMask;

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
}

/// What a trailing-drawdown breach ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawdownScope {
    /// The session (SPEC 6: a breach ends the episode, and episodes are
    /// sessions, as in training): HOLD until its end, then the next session
    /// trades again with the drawdown measured from its starting equity.
    Session,
    /// Everything after it, for the life of the engine, as a funded account
    /// that is closed on a breach.
    Engine,
}

impl EngineConfig {
    /// The settings the checkpoint was trained with, greedy decisions.
    pub fn from_policy(policy: &Policy<'_>) -> EngineConfig {
        EngineConfig {
            sim: policy.metadata().sim,
            sampling: Sampling::Greedy,
            actions: None,
            drawdown: DrawdownScope::Session,
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

/// Why a decision was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// The policy chose `action` among the allowed ones.
    Policy,
    /// The session's last bar: go flat, no policy involved.
    SessionEnd,
    /// The trailing drawdown was breached: flat, and only HOLD until the
    /// session ends (or for good, with [`DrawdownScope::Engine`]).
    DrawdownBreached,
}

impl DecisionKind {
    pub const fn name(self) -> &'static str {
        match self {
            DecisionKind::Policy => "policy",
            DecisionKind::SessionEnd => "session_end",
            DecisionKind::DrawdownBreached => "drawdown_breached",
        }
    }
}

/// One decision, made at a bar's close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub kind: DecisionKind,
    /// Start of the bar that closed (UTC ns).
    pub bar_ts_ns: i64,
    /// The decision instant: the bar's end (UTC ns).
    pub ts_ns: i64,
    pub action: Action,
    /// The position before the decision: -1, 0, +1.
    pub position: i8,
    /// The position the execution system should hold after it: -1, 0, +1.
    pub target_position: i8,
    /// The protective stop to hold (for an entry: indicative, placed from the
    /// bar's close; the fill price sets the exact one). `None` when flat.
    pub stop_price: Option<f64>,
    pub target_price: Option<f64>,
    /// Masked softmax over the checkpoint's actions (`probs[..n_actions]`).
    pub probs: [f32; MAX_ACTIONS],
    pub n_actions: u8,
    pub mask: ActionMask,
    /// Close of the bar and ATR at the decision (points).
    pub close: f64,
    pub atr: f64,
    /// Account equity marked at the close (dollars).
    pub equity: f64,
}

impl Decision {
    pub fn probs(&self) -> &[f32] {
        &self.probs[..self.n_actions as usize]
    }
}

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

/// Whether the data arrives as ticks or as bars: it decides how an order
/// fills (next tick, or next bar's open) and how the session end closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    Unknown,
    Ticks,
    Bars,
}

/// The runtime engine over one checkpoint.
pub struct Engine<'a> {
    policy: Policy<'a>,
    bars: BarBuilder,
    features: FeatureEngine,
    sim: Simulator,
    scratch: PolicyScratch,
    prefix: FirstLayerPrefix<'a>,
    obs: [f32; OBS_DIM_PHASE2],
    rng: Rng,
    sampling: Sampling,
    drawdown: DrawdownScope,
    /// The session whose trailing-drawdown episode is running (`Session` scope).
    drawdown_session: Option<i64>,
    phase: u8,
    feed: Feed,
    events: SimEvents,
    decisions: u64,
    /// The last session (its id) whose `SessionEnd` decision was given: a
    /// clock after it says nothing more.
    session_end_said: Option<i64>,
}

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
        let sim = Simulator::new(config.sim).map_err(EngineError::Sim)?;
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
            sim,
            scratch: PolicyScratch::new(),
            prefix: FirstLayerPrefix::new(),
            obs: [0.0; OBS_DIM_PHASE2],
            rng: Rng::new(seed),
            sampling: config.sampling,
            drawdown: config.drawdown,
            drawdown_session: None,
            phase: meta.phase,
            feed: Feed::Unknown,
            events: SimEvents::default(),
            decisions: 0,
            session_end_said: None,
        })
    }

    /// One trade print. Returns the decision made if it closed a bar. A bad
    /// tick (NaN or non-positive price, negative size, time going backwards)
    /// is refused with its reason and changes nothing.
    #[inline]
    pub fn on_tick(&mut self, tick: &Tick) -> Result<Option<Decision>, TickRejected> {
        self.tick_inner(tick, None)
    }

    /// [`Engine::on_tick`] with the action chosen by `choose(mask, position)`
    /// instead of the policy (baselines in `nq-eval`: random valid actions,
    /// buy and hold). Everything else, fills and P&L included, is the
    /// engine's own; a choice outside the mask becomes HOLD. The decision's
    /// probabilities are still the policy's.
    pub fn on_tick_with(
        &mut self,
        tick: &Tick,
        choose: &mut dyn FnMut(ActionMask, i8) -> Action,
    ) -> Result<Option<Decision>, TickRejected> {
        self.tick_inner(tick, Some(choose))
    }

    /// [`Engine::on_bar`] with the action chosen by `choose`, as in
    /// [`Engine::on_tick_with`].
    pub fn on_bar_with(
        &mut self,
        bar: &Bar,
        choose: &mut dyn FnMut(ActionMask, i8) -> Action,
    ) -> Option<Decision> {
        self.bar_inner(bar, Some(choose))
    }

    fn tick_inner(
        &mut self,
        tick: &Tick,
        choose: Option<&mut dyn FnMut(ActionMask, i8) -> Action>,
    ) -> Result<Option<Decision>, TickRejected> {
        self.events = SimEvents::default();
        let after_clock_close = self.bars.open_bar().is_none();
        let closed = self.bars.push(tick)?;
        self.feed = Feed::Ticks;
        if after_clock_close {
            // The last bar was closed by a clock, so its orders still wait
            // for a print: one a bar past the session end comes too late.
            let bar_ns = self.features.config().bar_ns();
            self.close_out_ended_session(tick.ts_ns, bar_ns);
        }
        let decision = match closed {
            Some(bar) => self.close_bar(&bar, Some(tick.ts_ns), choose),
            None => None,
        };
        let events = self.sim.on_tick(tick);
        self.merge_events(events);
        Ok(decision)
    }

    /// A clock tick for a quiet market: closes the open bar if `now_ns` is at
    /// or after its end, and decides on it. With no bar open, a clock at or
    /// after the end of the last bar's session ends that session when the
    /// market stopped before its end (below).
    pub fn flush(&mut self, now_ns: i64) -> Option<Decision> {
        self.events = SimEvents::default();
        match self.bars.flush(now_ns) {
            Some(bar) => self.close_bar(&bar, Some(now_ns), None),
            None => self.end_session_on_clock(now_ns),
        }
    }

    /// The market stopped before the session end (an early close; an
    /// RTH-only feed with no print in the session's last minute), so no bar
    /// will close to end the session, and a position or order is still held
    /// at a clock past its end: live, that is a position about to be held
    /// overnight. The clock gives the `SessionEnd` decision (once per
    /// session) that such a bar would have given; the flatten fills on the
    /// next print, or, once a whole bar has passed with none, at the last
    /// bar's close, as it would when that print came.
    fn end_session_on_clock(&mut self, now_ns: i64) -> Option<Decision> {
        let last = *self.features.last_bar();
        if !(self.holding()
            && self.features.bars_seen() > 0
            && last.in_session
            && now_ns >= last.session.end_ns)
        {
            return None;
        }
        let said = self.session_end_said == Some(last.session.id);
        self.session_end_said = Some(last.session.id);
        let position = self.sim.position_side();
        let mut probs = [0.0; MAX_ACTIONS];
        probs[Action::Hold.code() as usize] = 1.0;
        let decision = (!said).then(|| Decision {
            kind: DecisionKind::SessionEnd,
            bar_ts_ns: last.ts_ns,
            ts_ns: now_ns,
            action: Action::Hold,
            position,
            target_position: 0,
            stop_price: None,
            target_price: None,
            probs,
            n_actions: self.policy.n_actions() as u8,
            mask: ActionMask::HOLD_ONLY,
            close: last.close,
            atr: last.atr,
            equity: self.sim.equity(last.close),
        });
        let grace_ns = match self.feed {
            Feed::Bars => 0,
            Feed::Ticks | Feed::Unknown => self.features.config().bar_ns(),
        };
        self.close_out_ended_session(now_ns, grace_ns);
        if self.sim.position_side() != 0 && self.sim.pending().is_none() {
            self.sim.flatten_on_next_fill(ExitReason::SessionEnd);
        }
        decision
    }

    /// One closed bar, for users who have bars rather than ticks. Refused
    /// (`None`) if inconsistent or not later than the previous bar.
    pub fn on_bar(&mut self, bar: &Bar) -> Option<Decision> {
        self.bar_inner(bar, None)
    }

    fn bar_inner(
        &mut self,
        bar: &Bar,
        choose: Option<&mut dyn FnMut(ActionMask, i8) -> Action>,
    ) -> Option<Decision> {
        self.events = SimEvents::default();
        if !bar.is_consistent()
            || (self.features.bars_seen() > 0 && bar.ts_ns <= self.features.last_bar().ts_ns)
        {
            return None;
        }
        self.feed = Feed::Bars;
        self.close_out_ended_session(bar.ts_ns, 0);
        let events = self.sim.on_bar(bar);
        self.merge_events(events);
        self.close_bar(bar, None, choose)
    }

    /// The market comes back at `next_ns` after the session of the last
    /// closed bar ended, while that bar left a position or an order: an
    /// early close, RTH-only data with a quiet last minute (bars), or a
    /// clock-closed bar whose next print came too late (ticks). Nothing opens
    /// after the session end, so a pending entry is dropped; a position gets
    /// `grace_ns` past the end for its exit to fill on a print, then closes
    /// at that bar's close, at its end, for the reason of a pending exit
    /// (else the session end).
    fn close_out_ended_session(&mut self, next_ns: i64, grace_ns: i64) {
        let last = *self.features.last_bar();
        let pending = self.sim.pending();
        let grace_ns = match pending {
            Some(PendingOrder::Entry { .. }) => 0,
            _ => grace_ns,
        };
        if !(self.holding()
            && self.features.bars_seen() > 0
            && last.in_session
            && next_ns >= last.session.end_ns.saturating_add(grace_ns))
        {
            return;
        }
        let reason = match pending {
            Some(PendingOrder::Exit { reason, .. }) => reason,
            _ => ExitReason::SessionEnd,
        };
        let closed_ns = last.ts_ns.saturating_add(self.features.config().bar_ns());
        if let Some(trade) = self.sim.flatten(last.close, closed_ns, reason) {
            self.events.exit = Some(trade);
        }
        self.events.breached |= self.sim.is_breached();
    }

    /// The execution system's view of the position wins over the simulated
    /// one: the next observation, mask and decision start from it.
    pub fn on_fill(&mut self, fill: &FillReport) -> Result<(), FillRejected> {
        if !(-1..=1).contains(&fill.position) {
            return Err(FillRejected::Position);
        }
        // Finite, positive and on the instrument's tick grid's range: a price
        // the simulator could not hold would be replaced by the last price.
        let ok = |p: f64| self.sim.holds_price(p);
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
        self.sim.sync_position(&PositionSync {
            ts_ns: fill.ts_ns,
            side: fill.position,
            entry_price: fill.entry_price,
            stop_price: fill.stop_price,
            target_price: fill.target_price,
            atr: self.features.atr(),
        });
        Ok(())
    }

    /// A position is open or an order is on its way.
    fn holding(&self) -> bool {
        self.sim.position_side() != 0 || self.sim.pending().is_some()
    }

    fn merge_events(&mut self, events: SimEvents) {
        if events.entry.is_some() {
            self.events.entry = events.entry;
        }
        if events.exit.is_some() {
            self.events.exit = events.exit;
        }
        self.events.breached |= events.breached;
    }

    /// `closed_ns`: when the print or clock that closed the bar came (`None`
    /// for bar data).
    fn close_bar(
        &mut self,
        bar: &Bar,
        closed_ns: Option<i64>,
        choose: Option<&mut dyn FnMut(ActionMask, i8) -> Action>,
    ) -> Option<Decision> {
        let info = self.features.on_bar(bar).ok()?;
        self.sim.on_bar_close();
        // A position reported before there was an ATR got no legs it could
        // reach; now they can be placed as an entry would place them.
        self.sim.place_missing_legs(info.atr);
        let bar_ns = self.features.config().bar_ns();
        let ts_ns = bar.ts_ns.saturating_add(bar_ns);
        if self.drawdown == DrawdownScope::Session
            && info.in_session
            && self.drawdown_session != Some(info.session.id)
        {
            // A new episode; flat, as the last session ended flat.
            self.sim.start_episode();
            self.drawdown_session = Some(info.session.id);
        }
        let holding = self.holding();
        let session_end = info.session.end_ns;
        // Closed at or after the session end, a bar in the session was its
        // last traded one even when it is not its last bar (an early close;
        // RTH-only data with a quiet last minute): no order may follow it.
        let last_traded = info.in_session && closed_ns.is_some_and(|t| t >= session_end);
        // A session whose last bar never came still ends flat: the first bar
        // after it closes what is open.
        let session_over = info.is_last_bar || last_traded || (!info.in_session && holding);
        let decides = info.ready && info.in_session;
        if !(decides || (session_over && holding)) {
            return None;
        }
        let (price, atr) = (info.close, info.atr);
        let position = self.sim.position_side();
        let n_actions = self.policy.n_actions();
        let mut decision = Decision {
            kind: DecisionKind::Policy,
            bar_ts_ns: bar.ts_ns,
            ts_ns,
            action: Action::Hold,
            position,
            target_position: 0,
            stop_price: None,
            target_price: None,
            probs: [0.0; MAX_ACTIONS],
            n_actions: n_actions as u8,
            mask: ActionMask::HOLD_ONLY,
            close: price,
            atr,
            equity: self.sim.equity(price),
        };
        if self.sim.is_breached() {
            decision.kind = DecisionKind::DrawdownBreached;
            decision.probs[0] = 1.0;
            return Some(decision);
        }
        if session_over {
            decision.kind = DecisionKind::SessionEnd;
            decision.probs[0] = 1.0;
            if info.in_session {
                self.session_end_said = Some(info.session.id);
            }
            // With ticks the flatten fills on the next print, unless nothing
            // printed for a whole bar after the session end (RTH-only data,
            // early closes): that print would carry the position overnight,
            // so it closes at the session's last price, as with bars.
            let no_print_after_end = info.in_session
                && closed_ns.is_some_and(|t| t >= session_end.saturating_add(bar_ns));
            if self.feed == Feed::Bars || no_print_after_end {
                if let Some(trade) = self.sim.flatten(price, ts_ns, ExitReason::SessionEnd) {
                    self.events.exit = Some(trade);
                }
                decision.equity = self.sim.equity(price);
            } else {
                self.sim.flatten_on_next_fill(ExitReason::SessionEnd);
            }
            return Some(decision);
        }

        let mask = self.sim.mask(price, atr, n_actions);
        let view = self.sim.position_view();
        let dim = self.policy.obs_dim();
        // The buffer holds a phase-2 observation, and `dim` was checked against the layout.
        self.features
            .write_observation(&view, mask, self.phase, &mut self.obs)
            .ok()?;
        let out = self
            .policy
            .forward_prepared(&self.obs[..dim], mask, &mut self.scratch, &mut self.prefix)
            .ok()?;
        let action = match (choose, self.sampling) {
            (Some(choose), _) => Some(choose(out.mask(), position))
                .filter(|a| out.mask().allows(*a))
                .unwrap_or(Action::Hold),
            (None, Sampling::Greedy) => out.argmax(),
            (None, Sampling::Sample { .. }) => out.sample(&mut self.rng),
        };
        decision.action = action;
        decision.mask = out.mask();
        decision.probs[..n_actions].copy_from_slice(out.probs());
        // The mask came from this simulator state, so the action is accepted.
        let _ = self.sim.submit(action, price, atr, ts_ns);
        decision.target_position = match (position, action) {
            (0, Action::Buy) => 1,
            (0, Action::Sell) => -1,
            (1, Action::Sell) | (-1, Action::Buy) => 0,
            (p, _) => p,
        };
        if decision.target_position != 0 {
            if position == 0 {
                // Indicative: the bracket the simulator would place for a fill at
                // this close; the real fill price sets the exact one.
                let side = decision.target_position;
                if let Some((stop, target)) = self
                    .sim
                    .market_fill_price(side, price)
                    .and_then(|fill| self.sim.bracket(side, fill, atr))
                {
                    decision.stop_price = Some(stop);
                    decision.target_price = Some(target);
                }
            } else {
                let view = self.sim.position_view();
                decision.stop_price = Some(view.stop_price);
                decision.target_price = Some(view.target_price);
            }
        }
        self.decisions += 1;
        Some(decision)
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
    /// `ExitReason::EndOfData` at `ts_ns`, and drops a pending order. The
    /// closed trade is returned and is also in [`Engine::events`].
    pub fn end_of_data(&mut self, ts_ns: i64) -> Option<TradeRecord> {
        self.events = SimEvents::default();
        let price = self.sim.last_price().unwrap_or(f64::NAN);
        let trade = self.sim.flatten(price, ts_ns, ExitReason::EndOfData);
        self.events.exit = trade;
        self.events.breached = trade.is_some() && self.sim.is_breached();
        trade
    }

    /// Fills, exits and a breach caused by the last `on_tick`, `on_bar` or
    /// `flush` call (trade records for reports).
    pub fn events(&self) -> &SimEvents {
        &self.events
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

    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    pub fn features(&self) -> &FeatureEngine {
        &self.features
    }

    /// Policy decisions made so far.
    pub fn decision_count(&self) -> u64 {
        self.decisions
    }
}
