//! The bar step: the one place where the order of things at a bar is decided.
//! [`BarStepper`] owns the simulated account and the session rules; the
//! [`Engine`](crate::engine::Engine) (nq-eval, nq-signal, the C ABI) and the
//! trainer's environments both drive it, so the game a policy trains on is
//! the game it is evaluated and traded on, call for call.
//!
//! # The sequence
//! For each input, in this order:
//!
//! 1. **Close-out of an ended session.** A position (or order) still held
//!    from a session that ended at least a grace ago (ticks: one bar, so the
//!    flatten can fill on a print; bars, or a pending entry: none) is closed
//!    at that session's last price, stamped at its last bar's end: the
//!    market stopped before the session end (an early close, RTH-only data)
//!    and nothing after it may fill the exit. A pending entry is dropped.
//! 2. **The record settles** (bars): a pending order fills at the bar's
//!    open, then the bracket and the drawdown are checked over its range
//!    with the conservative rule ([`Simulator::on_bar`]).
//! 3. **The bar closes** ([`BarStepper::close_bar`]): the open position
//!    counts the bar, legs missing from a reported position are placed from
//!    the ATR, a new session starts a new drawdown episode, and then one of:
//!    - the account is breached: a [`DecisionKind::DrawdownBreached`]
//!      decision, HOLD until the session ends;
//!    - the session is over (its last bar; a bar closed at or after its end;
//!      a bar outside it while holding): a [`DecisionKind::SessionEnd`]
//!      decision, once per session, and the flatten (bars: at this close;
//!      ticks: on the next print, or at this close when no print came within
//!      a bar of the end);
//!    - the bar is in session and the observation is ready: the policy
//!      decides ([`BarStepper::act`]) among the actions of the mask;
//!    - otherwise nothing (warm-up, outside the session).
//! 4. **The session end without a closing bar** (ticks and clocks): a print
//!    or clock at or after the end of the session a position is held from
//!    gives the `SessionEnd` decision (if that session has not had it) and
//!    queues the flatten for the print.
//! 5. **The print settles** (ticks): a pending order fills at its price,
//!    then the bracket and the drawdown ([`Simulator::on_tick`]).
//!
//! So every trade opens inside its session and closes less than one bar
//! after its end, and each session has at most one `SessionEnd` decision.
//!
//! Everything a step did comes back in one [`Step`]: the bar it closed with
//! the account at that close, the decision, the entry, the exits (in order)
//! and a breach, and the account after it. Callers never probe the state
//! afterwards to learn what happened.

use core::fmt;

use nq_formats::{Action, Bar, SimConfig, Tick};

use crate::features::BarInfo;
use crate::mask::ActionMask;
use crate::policy::MAX_ACTIONS;
use crate::position::PositionView;
use crate::sim::{EntryFill, ExitReason, PendingOrder, SimEvents, Simulator, TradeRecord};

/// Whether the data arrives as ticks or as bars: it decides how an order
/// fills (next tick, or next bar's open) and how the session end closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    /// Nothing fed yet.
    Unknown,
    Ticks,
    Bars,
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

/// Why a decision was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionKind {
    /// The policy chose `action` among the allowed ones.
    Policy,
    /// The session is over: go flat, no policy involved.
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

/// One decision, made at a bar's close (or, for a session end without a
/// closing bar, at the print or clock that found the session over).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub kind: DecisionKind,
    /// Start of the bar the decision is about (UTC ns): the bar that closed,
    /// or for a session end without one, the last bar closed.
    pub bar_ts_ns: i64,
    /// The decision instant: the bar's end, or the print or clock (UTC ns).
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

    /// A decision no policy takes part in: HOLD with certainty, flat target.
    fn forced(kind: DecisionKind, bar: &BarInfo, ts_ns: i64, position: i8, n_actions: u8) -> Self {
        let mut probs = [0.0; MAX_ACTIONS];
        probs[Action::Hold.code() as usize] = 1.0;
        Decision {
            kind,
            bar_ts_ns: bar.ts_ns,
            ts_ns,
            action: Action::Hold,
            position,
            target_position: 0,
            stop_price: None,
            target_price: None,
            probs,
            n_actions,
            mask: ActionMask::HOLD_ONLY,
            close: bar.close,
            atr: bar.atr,
            equity: 0.0,
        }
    }
}

/// Why a closed bar brought no policy decision, or that it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// A decision was made at its close (of this kind).
    Decided(DecisionKind),
    /// The feature window is not full yet.
    Warmup,
    /// The bar lies outside the session traded, and nothing was held that
    /// its end would close.
    OutsideSession,
}

impl BarKind {
    /// The `kind` column of `equity.parquet`.
    pub const fn name(self) -> &'static str {
        match self {
            BarKind::Decided(kind) => kind.name(),
            BarKind::Warmup => "warmup",
            BarKind::OutsideSession => "outside_session",
        }
    }
}

/// A bar that closed in this step, with the account at its close (before
/// the decision and before any fill on the print that closed it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClosedBar {
    /// The bar's start (UTC ns).
    pub bar_ts_ns: i64,
    /// The bar's end: when a decision was (or would have been) made.
    pub ts_ns: i64,
    pub close: f64,
    pub atr: f64,
    pub kind: BarKind,
    /// The position held at the close, -1, 0, +1.
    pub position: i8,
    /// Balance plus open P&L marked at the close.
    pub equity: f64,
    pub balance: f64,
}

/// The account after a step.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Account {
    /// -1, 0, +1.
    pub position: i8,
    /// An order waits for the next print or bar.
    pub pending: bool,
    /// Balance plus open P&L at the last price seen.
    pub equity: f64,
    pub balance: f64,
    pub breached: bool,
}

/// Everything one input (a print, a bar, a clock, a fill report, the end of
/// the data) did, in one value.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Step {
    /// The bar this input closed, if any.
    pub bar: Option<ClosedBar>,
    /// The decision made, if any.
    pub decision: Option<Decision>,
    /// An entry order filled.
    pub entry: Option<EntryFill>,
    /// Positions closed, in the order they closed (at most two: a session's
    /// close-out, then a new session's trade stopped on the same input).
    exits: [Option<TradeRecord>; 2],
    /// The first exit is the close-out of a session that ended before this
    /// input came; it is dated at that session's last bar's end.
    pub closed_out: bool,
    /// The trailing drawdown was breached during this input.
    pub breached: bool,
    /// The account after the input.
    pub account: Account,
}

impl Step {
    /// The trades closed by this input, in order.
    pub fn exits(&self) -> core::iter::Flatten<core::slice::Iter<'_, Option<TradeRecord>>> {
        self.exits.iter().flatten()
    }

    fn push_exit(&mut self, trade: TradeRecord) {
        match &mut self.exits {
            [None, _] => self.exits[0] = Some(trade),
            [Some(_), slot] => *slot = Some(trade),
        }
    }

    fn merge(&mut self, events: SimEvents) {
        if events.entry.is_some() {
            self.entry = events.entry;
        }
        if let Some(trade) = events.exit {
            self.push_exit(trade);
        }
        self.breached |= events.breached;
    }
}

/// What the step asks of its caller at a bar close.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Due {
    /// Nothing to decide.
    Nothing,
    /// The policy decides: build the observation for this position and mask,
    /// pick an action the mask allows, and call [`BarStepper::act`].
    Policy { mask: ActionMask },
}

/// A setting of the simulator is unusable (its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSim(pub &'static str);

impl fmt::Display for InvalidSim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simulator setting `{}` is invalid", self.0)
    }
}

impl core::error::Error for InvalidSim {}

/// The decision context kept between [`BarStepper::close_bar`] and
/// [`BarStepper::act`].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Awaiting {
    bar: BarInfo,
    ts_ns: i64,
    mask: ActionMask,
    position: i8,
    equity: f64,
}

/// The simulated account and the session rules, stepped bar by bar (see the
/// module docs for the sequence). Plain data of fixed size; never allocates.
#[derive(Debug, Clone)]
pub struct BarStepper {
    sim: Simulator,
    feed: FeedKind,
    drawdown: DrawdownScope,
    /// The session whose trailing-drawdown episode is running (`Session` scope).
    drawdown_session: Option<i64>,
    /// The last session (its id) whose `SessionEnd` decision was given.
    session_end_said: Option<i64>,
    /// The last bar closed.
    last: Option<BarInfo>,
    /// The last bar closed inside its session: the session a position is
    /// held from, its end and its last price.
    last_in_session: Option<BarInfo>,
    bar_ns: i64,
    n_actions: u8,
    awaiting: Option<Awaiting>,
    step: Step,
    decisions: u64,
}

impl BarStepper {
    /// A flat account with `sim`'s starting balance; decisions over the first
    /// `n_actions` action codes (3 in phase 1, 6 in phase 2).
    pub fn new(
        sim: SimConfig,
        drawdown: DrawdownScope,
        n_actions: usize,
    ) -> Result<BarStepper, InvalidSim> {
        let sim = Simulator::new(sim).map_err(InvalidSim)?;
        let bar_ns = sim.config().bar_ns();
        Ok(BarStepper {
            sim,
            feed: FeedKind::Unknown,
            drawdown,
            drawdown_session: None,
            session_end_said: None,
            last: None,
            last_in_session: None,
            bar_ns,
            n_actions: n_actions.min(MAX_ACTIONS) as u8,
            awaiting: None,
            step: Step::default(),
            decisions: 0,
        })
    }

    /// The same stepper whose entries get no stop or target (see
    /// [`Simulator::without_brackets`]).
    pub fn without_brackets(mut self) -> BarStepper {
        self.sim = self.sim.without_brackets();
        self
    }

    /// Back to a flat account with the starting balance and no history (a
    /// new training episode), with the same settings.
    pub fn reset(&mut self) {
        self.sim.reset();
        self.feed = FeedKind::Unknown;
        self.drawdown_session = None;
        self.session_end_said = None;
        self.last = None;
        self.last_in_session = None;
        self.awaiting = None;
        self.step = Step::default();
        self.decisions = 0;
    }

    pub fn simulator(&self) -> &Simulator {
        &self.sim
    }

    /// The position as the features see it.
    pub fn position_view(&self) -> PositionView {
        self.sim.position_view()
    }

    /// The last bar closed.
    pub fn last_bar(&self) -> Option<&BarInfo> {
        self.last.as_ref()
    }

    pub fn feed(&self) -> FeedKind {
        self.feed
    }

    /// Policy decisions made so far.
    pub fn decision_count(&self) -> u64 {
        self.decisions
    }

    /// Starts the record of a new step. A decision asked for and not yet
    /// given stays asked: the trainer's step is the decision at one bar and
    /// the replay of the next.
    pub fn begin(&mut self) {
        self.step = Step::default();
    }

    /// The record so far: what the step did, with the account now.
    pub fn finish(&mut self) -> Step {
        self.step.account = Account {
            position: self.sim.position_side(),
            pending: self.sim.pending().is_some(),
            equity: self.sim.equity_at_last(),
            balance: self.sim.balance(),
            breached: self.sim.is_breached(),
        };
        self.step
    }

    /// Bar data: one bar that [`crate::features::FeatureEngine::on_bar`]
    /// accepted as `info`, replayed and closed (steps 1 to 3).
    pub fn on_bar(&mut self, bar: &Bar, info: &BarInfo) -> Due {
        // A new record: a decision asked at the last close and not given
        // was HOLD.
        self.awaiting = None;
        self.feed = FeedKind::Bars;
        self.close_out_ended_session(bar.ts_ns);
        let events = self.sim.on_bar(bar);
        self.step.merge(events);
        self.close_bar(bar, info, None)
    }

    /// Tick data, before the print settles: the close-out (step 1) and, when
    /// the print closed a bar, that bar's close (step 3) as `info`.
    pub fn on_print(&mut self, ts_ns: i64, closed: Option<(&Bar, &BarInfo)>) -> Due {
        self.awaiting = None;
        self.feed = FeedKind::Ticks;
        // A bar of the session closing here is that session's last price:
        // its close, not an earlier one, ends what is held (step 3).
        if !closed.is_some_and(|(_, info)| info.in_session) {
            self.close_out_ended_session(ts_ns);
        }
        match closed {
            Some((bar, info)) => self.close_bar(bar, info, Some(ts_ns)),
            None => Due::Nothing,
        }
    }

    /// Tick data, after the decision: the session end without a closing bar
    /// (step 4), then the print fills and checks the bracket (step 5).
    pub fn settle_print(&mut self, tick: &Tick) {
        self.end_session_without_bar(tick.ts_ns);
        let events = self.sim.on_tick(tick);
        self.step.merge(events);
    }

    /// A clock (live, a quiet market), before any decision on a bar it
    /// closes: unless that bar is in the session, the session end (step 4)
    /// and the close-out (step 1).
    pub fn on_clock(&mut self, now_ns: i64, closed: Option<(&Bar, &BarInfo)>) -> Due {
        self.awaiting = None;
        if !closed.is_some_and(|(_, info)| info.in_session) {
            // Live, the clock is how a feed whose market stopped early learns
            // the session is over: say so (step 4) before closing out what
            // it left.
            self.end_session_without_bar(now_ns);
            self.close_out_ended_session(now_ns);
        }
        match closed {
            Some((bar, info)) => self.close_bar(bar, info, Some(now_ns)),
            None => Due::Nothing,
        }
    }

    /// A clock, after the decision: the session end without a closing bar
    /// (step 4). Nothing fills on a clock.
    pub fn settle_clock(&mut self, now_ns: i64) {
        self.end_session_without_bar(now_ns);
    }

    /// The policy's (or a baseline's) choice at the bar close that asked for
    /// it: `action` if the mask allows it, else HOLD. `probs` are the
    /// checkpoint's masked probabilities (shorter is padded with zeros).
    /// Returns the decision, also in the step.
    pub fn act(&mut self, action: Action, probs: &[f32]) -> Option<Decision> {
        let at = self.awaiting.take()?;
        let action = if at.mask.allows(action) {
            action
        } else {
            Action::Hold
        };
        let (price, atr) = (at.bar.close, at.bar.atr);
        // The mask came from this simulator state, so the action is accepted.
        let _ = self.sim.submit(action, price, atr, at.ts_ns);
        let mut decision = Decision {
            kind: DecisionKind::Policy,
            action,
            mask: at.mask,
            target_position: target_position(at.position, action),
            equity: at.equity,
            ..Decision::forced(
                DecisionKind::Policy,
                &at.bar,
                at.ts_ns,
                at.position,
                self.n_actions,
            )
        };
        decision.probs = [0.0; MAX_ACTIONS];
        let n = probs.len().min(MAX_ACTIONS);
        decision.probs[..n].copy_from_slice(&probs[..n]);
        if decision.target_position != 0 {
            let bracket = if at.position == 0 {
                // Indicative: the bracket the simulator would place for a fill
                // at this close; the real fill price sets the exact one.
                let side = decision.target_position;
                self.sim
                    .market_fill_price(side, price)
                    .and_then(|fill| self.sim.bracket(side, fill, atr))
                    .map(|(stop, target)| (Some(stop), Some(target)))
            } else {
                Some(self.sim.working_legs())
            };
            if let Some((stop, target)) = bracket {
                decision.stop_price = stop;
                decision.target_price = target;
            }
        }
        self.decisions += 1;
        self.step.decision = Some(decision);
        if let Some(bar) = &mut self.step.bar {
            bar.kind = BarKind::Decided(DecisionKind::Policy);
        }
        Some(decision)
    }

    /// The execution system's view of the position wins over the simulated
    /// one (see [`Simulator::sync_position`]); a position it no longer has is
    /// closed and in the step's exits.
    pub fn sync_position(&mut self, sync: &crate::sim::PositionSync) {
        if let Some(trade) = self.sim.sync_position(sync) {
            self.step.push_exit(trade);
        }
    }

    /// The data ran out (a backtest's end): closes any open position at the
    /// last price seen, with slippage and commission, as
    /// `ExitReason::EndOfData` at `ts_ns`, and drops a pending order.
    pub fn end_of_data(&mut self, ts_ns: i64) {
        let price = self.sim.last_price().unwrap_or(f64::NAN);
        if let Some(trade) = self.sim.flatten(price, ts_ns, ExitReason::EndOfData) {
            self.step.push_exit(trade);
            self.step.breached |= self.sim.is_breached();
        }
    }

    /// A position is open or an order is on its way.
    fn holding(&self) -> bool {
        self.sim.position_side() != 0 || self.sim.pending().is_some()
    }

    /// How long after the session end an exit may still fill on a print.
    fn grace_ns(&self) -> i64 {
        match (self.feed, self.sim.pending()) {
            (_, Some(PendingOrder::Entry { .. })) | (FeedKind::Bars, _) => 0,
            _ => self.bar_ns,
        }
    }

    /// The last in-session bar closed, when the position or order held now
    /// dates from its session or before (not one reported after its end):
    /// the session whose end closes it.
    fn held_session(&self) -> Option<BarInfo> {
        let last = self.last_in_session?;
        let since = self.sim.held_since_ns()?;
        (since <= last.session.end_ns).then_some(last)
    }

    /// Step 1: a position or order held from a session that ended at least a
    /// grace before `next_ns` closes at that session's last price.
    fn close_out_ended_session(&mut self, next_ns: i64) {
        let Some(last) = self.held_session() else {
            return;
        };
        if next_ns < last.session.end_ns.saturating_add(self.grace_ns()) {
            return;
        }
        let reason = match self.sim.pending() {
            Some(PendingOrder::Exit { reason, .. }) => reason,
            _ => ExitReason::SessionEnd,
        };
        let closed_ns = last.ts_ns.saturating_add(self.bar_ns);
        if let Some(trade) = self.sim.flatten(last.close, closed_ns, reason) {
            self.step.push_exit(trade);
            self.step.closed_out = self.step.exits().count() == 1;
        }
        self.step.breached |= self.sim.is_breached();
    }

    /// Step 3. `closed_ns`: when the print or clock that closed the bar came
    /// (`None` for bar data).
    pub fn close_bar(&mut self, bar: &Bar, info: &BarInfo, closed_ns: Option<i64>) -> Due {
        self.last = Some(*info);
        self.sim.on_bar_close();
        // A position reported before there was an ATR got no legs it could
        // reach; now they can be placed as an entry would place them.
        self.sim.place_missing_legs(info.atr);
        let ts_ns = bar.ts_ns.saturating_add(self.bar_ns);
        if self.drawdown == DrawdownScope::Session
            && info.in_session
            && self.drawdown_session != Some(info.session.id)
        {
            // A new episode; flat, as the last session ended flat.
            self.sim.start_episode();
            self.drawdown_session = Some(info.session.id);
        }
        // The session a position here is held from: this bar's, or for a bar
        // outside the session, the one before it.
        let held_from = if info.in_session {
            Some(info.session)
        } else {
            self.held_session().map(|b| b.session)
        };
        if info.in_session {
            self.last_in_session = Some(*info);
        }
        let holding = self.holding();
        let position = self.sim.position_side();
        let mut closed = ClosedBar {
            bar_ts_ns: bar.ts_ns,
            ts_ns,
            close: info.close,
            atr: info.atr,
            kind: if !info.ready {
                BarKind::Warmup
            } else {
                BarKind::OutsideSession
            },
            position,
            equity: self.sim.equity(info.close),
            balance: self.sim.balance(),
        };
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
            self.step.bar = Some(closed);
            return Due::Nothing;
        }
        if self.sim.is_breached() {
            let mut d = Decision::forced(
                DecisionKind::DrawdownBreached,
                info,
                ts_ns,
                position,
                self.n_actions,
            );
            d.equity = closed.equity;
            closed.kind = BarKind::Decided(DecisionKind::DrawdownBreached);
            self.step.bar = Some(closed);
            self.step.decision = Some(d);
            return Due::Nothing;
        }
        if session_over {
            let session = held_from.map_or(info.session.id, |s| s.id);
            if self.session_end_said != Some(session) {
                self.session_end_said = Some(session);
                let mut d = Decision::forced(
                    DecisionKind::SessionEnd,
                    info,
                    ts_ns,
                    position,
                    self.n_actions,
                );
                d.equity = closed.equity;
                self.step.decision = Some(d);
                closed.kind = BarKind::Decided(DecisionKind::SessionEnd);
            }
            // With ticks the flatten fills on the next print, unless nothing
            // printed for a whole bar after the session end (RTH-only data,
            // early closes): that print would carry the position overnight,
            // so it closes at the session's last price, as with bars.
            // (A position reported outside any session it could be held
            // from has no such end: it closes on the next print.)
            let no_print_after_end = held_from.is_some_and(|s| {
                closed_ns.is_some_and(|t| t >= s.end_ns.saturating_add(self.bar_ns))
            });
            if closed_ns.is_none() || no_print_after_end {
                if let Some(trade) = self.sim.flatten(info.close, ts_ns, ExitReason::SessionEnd) {
                    self.step.push_exit(trade);
                }
                if let Some(d) = &mut self.step.decision {
                    d.equity = self.sim.equity(info.close);
                }
            } else {
                self.sim.flatten_on_next_fill(ExitReason::SessionEnd);
            }
            self.step.bar = Some(closed);
            return Due::Nothing;
        }
        let mask = self.sim.mask(info.close, info.atr, self.n_actions as usize);
        self.awaiting = Some(Awaiting {
            bar: *info,
            ts_ns,
            mask,
            position,
            equity: closed.equity,
        });
        // The kind becomes the decision's in `act`.
        self.step.bar = Some(closed);
        Due::Policy { mask }
    }

    /// Step 4: a print or clock at `now_ns`, at or after the end of the
    /// session a position or order is held from, ends that session when no
    /// bar closing did: the `SessionEnd` decision (once per session) and the
    /// flatten, for the next print.
    fn end_session_without_bar(&mut self, now_ns: i64) {
        let Some(last) = self.held_session() else {
            return;
        };
        if now_ns < last.session.end_ns || self.step.decision.is_some() {
            return;
        }
        if self.session_end_said != Some(last.session.id) {
            self.session_end_said = Some(last.session.id);
            let mut d = Decision::forced(
                DecisionKind::SessionEnd,
                self.last.as_ref().unwrap_or(&last),
                now_ns,
                self.sim.position_side(),
                self.n_actions,
            );
            d.equity = self.sim.equity_at_last();
            self.step.decision = Some(d);
        }
        // A pending exit keeps its reason; a pending entry was dropped by
        // the close-out (nothing opens after the session end).
        if self.sim.position_side() != 0 && self.sim.pending().is_none() {
            self.sim.flatten_on_next_fill(ExitReason::SessionEnd);
        }
    }
}

/// SPEC 6: flat+BUY opens long, flat+SELL opens short, the opposite action
/// closes, anything else keeps the position.
pub const fn target_position(position: i8, action: Action) -> i8 {
    match (position, action) {
        (0, Action::Buy) => 1,
        (0, Action::Sell) => -1,
        (1, Action::Sell) | (-1, Action::Buy) => 0,
        (p, _) => p,
    }
}
