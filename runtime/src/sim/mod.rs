//! The execution simulator (SPEC section 6): one contract, market orders at
//! bar close, an ATR bracket on every entry, three position-management actions,
//! slippage, commission, session flatten and a trailing drawdown, with dollar
//! P&L from the instrument spec. [`Simulator::mask`] is the one action mask that
//! training, evaluation and live use share.

mod record;
mod sync;

pub use record::{side_name, EntryFill, ExitReason, Refused, SimEvents, Submitted, TradeRecord};
pub use sync::PositionSync;

use crate::mask::ActionMask;
use crate::position::PositionView;
use nq_formats::{Action, Bar, InstrumentSpec, SimConfig, Tick};

/// Every position is one contract.
pub const CONTRACTS: i32 = 1;

/// Slack for comparing ATR multiples (floats) with whole ticks, so that a
/// distance of exactly 1.5 ATR is not lost to rounding.
const EPS: f64 = 1e-9;

/// Prices and ATRs beyond this many ticks are treated as garbage: it keeps every
/// tick sum far inside `i64` and every tick count exact in an `f64`.
const MAX_TICKS: f64 = (1u64 << 50) as f64;

/// Where a leg goes when there is none to place (no reported price, no held
/// leg, no usable ATR; or entries without a bracket): out of reach, so it
/// never fires on a guess.
const OUT_OF_REACH: i64 = MAX_TICKS as i64 / 4;

/// An order waiting for the next tick or bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PendingOrder {
    /// Open a position of `side` (+1 long, -1 short); `atr` sizes the bracket.
    Entry {
        side: i8,
        atr: f64,
        decision_ts_ns: i64,
    },
    /// Close the open position at market.
    Exit {
        reason: ExitReason,
        decision_ts_ns: i64,
    },
}

impl PendingOrder {
    fn decision_ts_ns(&self) -> i64 {
        match *self {
            PendingOrder::Entry { decision_ts_ns, .. }
            | PendingOrder::Exit { decision_ts_ns, .. } => decision_ts_ns,
        }
    }
}

/// The open position. Prices are whole ticks; `best`/`worst` are the most and
/// least favourable price seen since entry, in ticks of favour (side x (price -
/// entry)), so the same code serves longs and shorts.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OpenPosition {
    side: i8,
    entry_ts_ns: i64,
    entry: i64,
    stop: i64,
    target: i64,
    best: i64,
    worst: i64,
    bars_held: u32,
}

impl OpenPosition {
    fn sign(&self) -> i64 {
        self.side as i64
    }

    /// Ticks in favour of the position at `price` (ticks).
    fn favour(&self, price: i64) -> i64 {
        self.sign() * (price - self.entry)
    }

    fn price_at(&self, favour: i64) -> i64 {
        self.entry + self.sign() * favour
    }

    fn saw(&mut self, favour: i64) {
        self.best = self.best.max(favour);
        self.worst = self.worst.min(favour);
    }
}

/// One market move to replay: a tick is a path whose four prices are equal.
/// Prices in ticks.
#[derive(Debug, Clone, Copy)]
struct PricePath {
    ts_ns: i64,
    open: i64,
    high: i64,
    low: i64,
    close: i64,
}

/// The execution simulator for one account trading one contract.
///
/// Fill rules, in plain words (all prices on the instrument's tick grid):
///
/// - **Orders.** A decision at bar close queues at most one market order: an
///   entry (flat + BUY long, flat + SELL short) or an exit (long + SELL, short +
///   BUY). It fills on the first tick ([`on_tick`](Self::on_tick)) or bar
///   ([`on_bar`](Self::on_bar)) whose timestamp is at or after the decision
///   time: at the tick's price, or at the bar's open. Every market fill (entries,
///   exits, stops, drawdown liquidation) is moved `slippage_ticks` against the
///   trader, rounded up to whole ticks. Commission is charged per contract per
///   side, taken from the balance at each fill.
/// - **Bracket.** The entry fill places a stop `stop_atr` x ATR and a target
///   `target_atr` x ATR from the fill price, ATR being the one given at the
///   decision. Both distances are rounded *up* to whole ticks (at least one):
///   the stop is never tighter and the target never nearer than asked.
/// - **Stop** (a stop-market order): triggers when a price touches it or trades
///   through it, and fills at the worse of the stop and that price, minus
///   slippage. On bars: if the open is already through the stop (a gap) it fills
///   at the open, otherwise, if the bar's range reaches it, at the stop price.
/// - **Target** (a limit order): fills at the target price, without slippage,
///   once a price trades strictly *through* it (a touch is not enough: the queue
///   may not reach us). A gap through it at the open also fills at the target.
/// - **Both in one bar.** If a bar's range contains both the stop and the
///   target, the stop is assumed hit first (conservative). The entry's own bar is
///   checked too: the bracket exists from the fill at its open on.
/// - **Position management** (SL_TO_BE, TRAIL_TIGHTEN, TRAIL_LOOSEN) moves the
///   stop at once, at the decision; see [`mask`](Self::mask) for when each is
///   valid. A moved stop always stays at least one tick on the losing side of
///   the decision price.
/// - **Flatten.** [`flatten`](Self::flatten) closes at a given price now (bar
///   data: the session's last close); [`flatten_on_next_fill`](Self::flatten_on_next_fill)
///   queues a market exit for the next tick or bar (tick data). Both cancel a
///   pending entry and apply slippage.
/// - **Account.** Equity = balance + open P&L at the mark (the last price seen).
///   The high-water mark is taken at marks only (each tick; each bar's close),
///   never at an intra-bar high. With `max_drawdown > 0`, equity at or below
///   high-water mark - `max_drawdown` breaches the account: the position is
///   liquidated at market (on bars, at the price where the breach happened, or
///   the open if it gapped there, whichever the adverse path reaches first
///   against the stop), pending orders are cancelled, and from then on only
///   HOLD is allowed. The caller ends the episode, and starts the next one
///   with [`start_episode`](Self::start_episode) or [`reset`](Self::reset).
/// - **Bad input** (non-finite or non-positive prices, inconsistent bars,
///   non-finite ATR) is ignored, never a panic: such ticks and bars change
///   nothing, and entries and stop moves are masked without a usable ATR.
#[derive(Debug, Clone)]
pub struct Simulator {
    config: SimConfig,
    spec: InstrumentSpec,
    slippage: i64,
    position: Option<OpenPosition>,
    pending: Option<PendingOrder>,
    balance: f64,
    realized_gross: f64,
    commissions: f64,
    high_water: f64,
    breached: bool,
    last_price: Option<i64>,
    trades: u64,
    /// Entries get the ATR bracket (SPEC 6); off only for a baseline that
    /// holds without a stop or target ([`Simulator::without_brackets`]).
    brackets: bool,
}

impl Simulator {
    /// A flat account with `starting_balance`. Fails with the name of the first
    /// unusable setting.
    pub fn new(config: SimConfig) -> Result<Simulator, &'static str> {
        config.validate()?;
        let slippage = libm::ceil(config.slippage_ticks - EPS).max(0.0);
        if slippage > MAX_TICKS {
            return Err("slippage_ticks");
        }
        Ok(Simulator::fresh(config, slippage as i64, true))
    }

    /// The same simulator whose entries get no stop and no target (legs out
    /// of reach): a position ends only by an exit order, the session end, a
    /// breach or the end of the data. For the buy-and-hold baseline; a
    /// policy's entries always carry the ATR bracket.
    pub fn without_brackets(mut self) -> Simulator {
        self.brackets = false;
        self
    }

    /// A new episode on the same account (the next session: SPEC 4 and 6).
    /// The trailing drawdown starts again from the equity now, and a breach
    /// in an earlier episode no longer stops trading; balance, P&L and trade
    /// counts carry on. Call it while flat.
    pub fn start_episode(&mut self) {
        self.breached = false;
        self.high_water = self.equity_at_last();
    }

    /// Back to the starting state with the same settings (a new episode).
    pub fn reset(&mut self) {
        *self = Simulator::fresh(self.config, self.slippage, self.brackets);
    }

    fn fresh(config: SimConfig, slippage: i64, brackets: bool) -> Simulator {
        Simulator {
            config,
            spec: config.instrument.spec(),
            slippage,
            position: None,
            pending: None,
            balance: config.starting_balance,
            realized_gross: 0.0,
            commissions: 0.0,
            high_water: config.starting_balance,
            breached: false,
            last_price: None,
            trades: 0,
            brackets,
        }
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Replays one trade print: fills a pending order at its price, then checks
    /// the bracket and the drawdown. Call `submit` for a decision before passing
    /// the tick that follows it. Unusable prices are ignored.
    pub fn on_tick(&mut self, tick: &Tick) -> SimEvents {
        match self.price_ticks(tick.price) {
            Some(p) => self.replay(PricePath {
                ts_ns: tick.ts_ns,
                open: p,
                high: p,
                low: p,
                close: p,
            }),
            None => SimEvents::default(),
        }
    }

    /// Replays one bar (bar data): fills a pending order at the open, then checks
    /// the bracket and the drawdown over the bar's range with the conservative
    /// rule, and marks at the close. Inconsistent bars are ignored. Call
    /// [`on_bar_close`](Self::on_bar_close) afterwards, as with tick data.
    pub fn on_bar(&mut self, bar: &Bar) -> SimEvents {
        if !bar.is_consistent() {
            return SimEvents::default();
        }
        match (
            self.price_ticks(bar.open),
            self.price_ticks(bar.high),
            self.price_ticks(bar.low),
            self.price_ticks(bar.close),
        ) {
            (Some(open), Some(high), Some(low), Some(close)) => self.replay(PricePath {
                ts_ns: bar.ts_ns,
                open,
                high,
                low,
                close,
            }),
            _ => SimEvents::default(),
        }
    }

    /// A bar closed (tick or bar data): counts it in the open position's
    /// `bars_held`. Call once per bar, before the decision.
    pub fn on_bar_close(&mut self) {
        if let Some(pos) = &mut self.position {
            pos.bars_held = pos.bars_held.saturating_add(1);
        }
    }

    /// The actions allowed now, for a decision at `price` with `atr`, restricted
    /// to the first `n_actions` codes (3 in phase 1, 6 in phase 2):
    ///
    /// - HOLD: always.
    /// - Nothing else while an order is pending or the account is breached.
    /// - Flat: BUY and SELL (entries), given a finite positive ATR.
    /// - Long: SELL (close); short: BUY (close). The same-side action is masked.
    /// - SL_TO_BE: in a position, open profit at `price` >= `breakeven_trigger_atr`
    ///   x ATR, the stop not already at or beyond entry + 1 tick in favour.
    /// - TRAIL_TIGHTEN: the stop moved `trail_step_atr` x ATR toward price (rounded
    ///   down to whole ticks, at least one) stays >= `trail_min_distance_atr` x ATR
    ///   from price.
    /// - TRAIL_LOOSEN: the stop moved the same step away stays <=
    ///   `trail_max_distance_atr` x ATR from price.
    /// - Every stop move must leave the stop at least one tick on the losing side
    ///   of `price`, so it never triggers on the spot.
    ///
    /// [`submit`](Self::submit) accepts exactly the actions this allows (with all
    /// six codes).
    pub fn mask(&self, price: f64, atr: f64, n_actions: usize) -> ActionMask {
        let mut mask = ActionMask::HOLD_ONLY;
        if self.breached || self.pending.is_some() {
            return mask;
        }
        match &self.position {
            None => {
                if self.atr_ticks(atr).is_some() {
                    mask = mask.with(Action::Buy).with(Action::Sell);
                }
            }
            Some(pos) => {
                mask = mask.with(if pos.side > 0 {
                    Action::Sell
                } else {
                    Action::Buy
                });
                for action in [Action::SlToBe, Action::TrailTighten, Action::TrailLoosen] {
                    if self.moved_stop(action, price, atr).is_some() {
                        mask = mask.with(action);
                    }
                }
            }
        }
        mask.limited_to(n_actions)
    }

    /// Acts on a decision made at bar close (`price` and `atr` as given to
    /// [`mask`](Self::mask)): queues an entry or exit order, or moves the stop
    /// at once. A masked action is refused and changes nothing. The order fills
    /// on the first tick or bar stamped at or after `decision_ts_ns`: pass the
    /// decision bar's end time (the next bar's start stamp).
    pub fn submit(
        &mut self,
        action: Action,
        price: f64,
        atr: f64,
        decision_ts_ns: i64,
    ) -> Result<Submitted, Refused> {
        if !self.mask(price, atr, Action::ALL.len()).allows(action) {
            return Err(Refused { action });
        }
        match action {
            Action::Hold => Ok(Submitted::Nothing),
            Action::Buy | Action::Sell => {
                self.pending = Some(match &self.position {
                    None => PendingOrder::Entry {
                        side: if action == Action::Buy { 1 } else { -1 },
                        atr,
                        decision_ts_ns,
                    },
                    Some(_) => PendingOrder::Exit {
                        reason: ExitReason::Signal,
                        decision_ts_ns,
                    },
                });
                Ok(Submitted::OrderQueued)
            }
            Action::SlToBe | Action::TrailTighten | Action::TrailLoosen => {
                match (self.moved_stop(action, price, atr), &mut self.position) {
                    (Some(stop), Some(pos)) => {
                        pos.stop = stop;
                        Ok(Submitted::StopMoved {
                            stop_price: self.spec.from_ticks(stop),
                        })
                    }
                    // The mask allowed it, so both exist; refuse rather than panic.
                    _ => Err(Refused { action }),
                }
            }
        }
    }

    /// Closes the position now at `price` (bar data: the session's last close)
    /// with slippage, and cancels any pending order. An unusable `price` falls
    /// back to the last price seen. Returns the closed trade, if there was one.
    pub fn flatten(&mut self, price: f64, ts_ns: i64, reason: ExitReason) -> Option<TradeRecord> {
        self.pending = None;
        let pos = self.position?;
        let market = self
            .price_ticks(price)
            .or(self.last_price)
            .unwrap_or(pos.entry);
        self.last_price = Some(market);
        let record = self.close(pos, ts_ns, pos.favour(market) - self.slippage, reason);
        self.mark(market);
        if self.drawdown_breached() {
            self.breach();
        }
        Some(record)
    }

    /// Queues a market exit with `reason` for the next tick or bar (tick data:
    /// the session's end), replacing any pending order; when flat it just
    /// cancels a pending entry.
    pub fn flatten_on_next_fill(&mut self, reason: ExitReason) {
        self.pending = self.position.map(|_| PendingOrder::Exit {
            reason,
            decision_ts_ns: i64::MIN,
        });
    }

    /// The stop and target (points) an entry of `side` filled at `entry_price`
    /// gets with `atr`, by the bracket rule above; `None` for an unusable price,
    /// ATR or side, and for a simulator [`without_brackets`](Self::without_brackets).
    /// Lets the engine announce the bracket the simulator will use.
    pub fn bracket(&self, side: i8, entry_price: f64, atr: f64) -> Option<(f64, f64)> {
        if !self.brackets {
            return None;
        }
        let entry = self.price_ticks(entry_price)?;
        let atr = self.atr_ticks(atr)?;
        if side == 0 {
            return None;
        }
        let (stop, target) = self.bracket_ticks(side.signum(), entry, atr);
        Some((self.spec.from_ticks(stop), self.spec.from_ticks(target)))
    }

    /// The price a market order of `side` (+1 buy, -1 sell) fills at when the
    /// market trades at `price`: `slippage_ticks` worse, on the grid.
    pub fn market_fill_price(&self, side: i8, price: f64) -> Option<f64> {
        let market = self.price_ticks(price)?;
        Some(
            self.spec
                .from_ticks(market + side.signum() as i64 * self.slippage),
        )
    }

    /// The position as the features see it.
    pub fn position_view(&self) -> PositionView {
        match &self.position {
            None => PositionView::FLAT,
            Some(pos) => PositionView {
                side: pos.side,
                entry_price: self.spec.from_ticks(pos.entry),
                stop_price: self.spec.from_ticks(pos.stop),
                target_price: self.spec.from_ticks(pos.target),
                bars_held: pos.bars_held,
                best_price: self.spec.from_ticks(pos.price_at(pos.best)),
                worst_price: self.spec.from_ticks(pos.price_at(pos.worst)),
            },
        }
    }

    /// The open position's stop and target (points) that can be reached:
    /// a leg placed out of reach (none reported and no ATR yet, or an entry
    /// without a bracket) is `None`, as it is when flat.
    pub fn working_legs(&self) -> (Option<f64>, Option<f64>) {
        match &self.position {
            None => (None, None),
            Some(pos) => {
                let leg = |ticks: i64| {
                    (!Self::out_of_reach(pos.entry, ticks)).then(|| self.spec.from_ticks(ticks))
                };
                (leg(pos.stop), leg(pos.target))
            }
        }
    }

    /// A leg this far from the entry was placed out of reach on purpose.
    fn out_of_reach(entry: i64, leg: i64) -> bool {
        (leg - entry).abs() >= OUT_OF_REACH / 2
    }

    /// +1 long, -1 short, 0 flat.
    pub fn position_side(&self) -> i8 {
        self.position.map_or(0, |p| p.side)
    }

    pub fn pending(&self) -> Option<PendingOrder> {
        self.pending
    }

    /// Since when something is held: the open position's entry time, or a
    /// pending entry's decision time; `None` when flat with no entry on its
    /// way.
    pub fn held_since_ns(&self) -> Option<i64> {
        match (&self.position, self.pending) {
            (Some(pos), _) => Some(pos.entry_ts_ns),
            (None, Some(PendingOrder::Entry { decision_ts_ns, .. })) => Some(decision_ts_ns),
            (None, _) => None,
        }
    }

    /// Cash: starting balance + realized gross P&L - every commission paid
    /// (including the entry side of an open position).
    pub fn balance(&self) -> f64 {
        self.balance
    }

    /// Open P&L in dollars at `mark`, before costs; an unusable `mark` falls back
    /// to the last price seen. Zero when flat.
    pub fn open_pnl(&self, mark: f64) -> f64 {
        match (&self.position, self.price_ticks(mark).or(self.last_price)) {
            (Some(pos), Some(m)) => self.dollars(pos.favour(m)),
            _ => 0.0,
        }
    }

    /// `balance() + open_pnl(mark)`.
    pub fn equity(&self, mark: f64) -> f64 {
        self.balance + self.open_pnl(mark)
    }

    /// Equity marked at the last price seen.
    pub fn equity_at_last(&self) -> f64 {
        match (&self.position, self.last_price) {
            (Some(pos), Some(m)) => self.balance + self.dollars(pos.favour(m)),
            _ => self.balance,
        }
    }

    /// The last usable price seen (tick, bar close, or flatten price).
    pub fn last_price(&self) -> Option<f64> {
        self.last_price.map(|t| self.spec.from_ticks(t))
    }

    /// Sum of the closed trades' gross P&L.
    pub fn realized_pnl(&self) -> f64 {
        self.realized_gross
    }

    /// Every commission paid so far, both sides, open position included.
    pub fn commissions(&self) -> f64 {
        self.commissions
    }

    /// Closed round trips.
    pub fn trade_count(&self) -> u64 {
        self.trades
    }

    /// The equity high-water mark the trailing drawdown is measured from.
    pub fn high_water_mark(&self) -> f64 {
        self.high_water
    }

    pub fn is_breached(&self) -> bool {
        self.breached
    }

    fn price_ticks(&self, price: f64) -> Option<i64> {
        let ticks = price / self.spec.tick_size;
        // For positive tick counts this is `InstrumentSpec::to_ticks` (round half
        // away from zero) without the software `round` on the per-tick path.
        (price.is_finite() && price > 0.0 && ticks < MAX_TICKS).then_some((ticks + 0.5) as i64)
    }

    /// The ATR in ticks, when usable.
    fn atr_ticks(&self, atr: f64) -> Option<f64> {
        let ticks = atr / self.spec.tick_size;
        (atr.is_finite() && atr > 0.0 && ticks < MAX_TICKS).then_some(ticks)
    }

    fn dollars(&self, favour_ticks: i64) -> f64 {
        favour_ticks as f64 * self.spec.tick_value * CONTRACTS as f64
    }

    fn bracket_ticks(&self, side: i8, entry: i64, atr: f64) -> (i64, i64) {
        let sign = side as i64;
        (
            entry - sign * Self::ticks_at_least(self.config.stop_atr, atr),
            entry + sign * Self::ticks_at_least(self.config.target_atr, atr),
        )
    }

    /// `multiple` ATRs (`atr` in ticks) as whole ticks, rounded up, at least one.
    fn ticks_at_least(multiple: f64, atr: f64) -> i64 {
        (libm::ceil(multiple * atr - EPS) as i64).max(1)
    }

    /// Where `action` would put the stop (ticks), or `None` when it is not valid now.
    fn moved_stop(&self, action: Action, price: f64, atr: f64) -> Option<i64> {
        if self.breached || self.pending.is_some() {
            return None;
        }
        let pos = self.position?;
        let now = pos.favour(self.price_ticks(price)?);
        let atr = self.atr_ticks(atr)?;
        let stop = pos.favour(pos.stop);
        let step = (libm::floor(self.config.trail_step_atr * atr + EPS) as i64).max(1);
        let new_stop = match action {
            Action::SlToBe => {
                let breakeven = 1;
                let in_profit = now as f64 >= self.config.breakeven_trigger_atr * atr - EPS;
                (in_profit && stop < breakeven).then_some(breakeven)?
            }
            Action::TrailTighten => {
                let moved = stop + step;
                let far_enough =
                    (now - moved) as f64 >= self.config.trail_min_distance_atr * atr - EPS;
                far_enough.then_some(moved)?
            }
            Action::TrailLoosen => {
                let moved = stop - step;
                let near_enough =
                    (now - moved) as f64 <= self.config.trail_max_distance_atr * atr + EPS;
                near_enough.then_some(moved)?
            }
            Action::Hold | Action::Buy | Action::Sell => return None,
        };
        (now - new_stop >= 1).then(|| pos.price_at(new_stop))
    }

    /// The favour (ticks) at or below which equity breaches the trailing
    /// drawdown, if one is set.
    fn breach_level(&self) -> Option<i64> {
        let limit = self.config.drawdown_limit()?;
        let floor = self.high_water - limit;
        let per_tick = self.spec.tick_value * CONTRACTS as f64;
        let level = libm::floor((floor - self.balance) / per_tick + EPS);
        Some(level.clamp(-MAX_TICKS * 4.0, MAX_TICKS * 4.0) as i64)
    }

    /// A cheap test that errs towards true: could equity at `favour` ticks be at
    /// or below the drawdown floor? (`breach_level` gives the exact answer.)
    fn may_breach_at(&self, favour: i64) -> bool {
        self.config.drawdown_limit().is_some_and(|limit| {
            let per_tick = self.spec.tick_value * CONTRACTS as f64;
            self.balance + favour as f64 * per_tick <= self.high_water - limit + per_tick * 1e-6
        })
    }

    fn drawdown_breached(&self) -> bool {
        self.config
            .drawdown_limit()
            .is_some_and(|limit| self.equity_at_last() <= self.high_water - limit)
    }

    fn breach(&mut self) {
        self.breached = true;
        self.pending = None;
    }

    fn mark(&mut self, price: i64) {
        self.last_price = Some(price);
        self.high_water = self.high_water.max(self.equity_at_last());
    }

    fn replay(&mut self, path: PricePath) -> SimEvents {
        let mut events = SimEvents::default();
        if self.breached {
            self.last_price = Some(path.close);
            return events;
        }
        if let Some(order) = self.pending.filter(|o| path.ts_ns >= o.decision_ts_ns()) {
            self.pending = None;
            match order {
                PendingOrder::Entry { side, atr, .. } => {
                    events.entry = self.open(path.ts_ns, path.open, side, atr);
                }
                PendingOrder::Exit { reason, .. } => {
                    if let Some(pos) = self.position {
                        let fill = pos.favour(path.open) - self.slippage;
                        events.exit = Some(self.close(pos, path.ts_ns, fill, reason));
                    }
                }
            }
        }
        if events.exit.is_none() {
            events.exit = self.check_bracket(&path);
        }
        if let Some(pos) = &mut self.position {
            let (a, b) = (pos.favour(path.high), pos.favour(path.low));
            pos.saw(a.max(b));
            pos.saw(a.min(b));
        }
        self.mark(path.close);
        if self.drawdown_breached() {
            // Normally caught at the breach level above; this covers a breach by
            // realized losses or by the entry's commission.
            if let Some(pos) = self.position {
                let fill = pos.favour(path.close) - self.slippage;
                events.exit = Some(self.close(pos, path.ts_ns, fill, ExitReason::Drawdown));
            }
            self.breach();
            events.breached = true;
        }
        events
    }

    fn open(&mut self, ts_ns: i64, market: i64, side: i8, atr: f64) -> Option<EntryFill> {
        let atr = self.atr_ticks(atr)?;
        let sign = side as i64;
        let entry = market + sign * self.slippage;
        let (stop, target) = if self.brackets {
            self.bracket_ticks(side, entry, atr)
        } else {
            (entry - sign * OUT_OF_REACH, entry + sign * OUT_OF_REACH)
        };
        let commission = self.config.commission_per_side * CONTRACTS as f64;
        self.balance -= commission;
        self.commissions += commission;
        self.position = Some(OpenPosition {
            side,
            entry_ts_ns: ts_ns,
            entry,
            stop,
            target,
            best: 0,
            worst: 0,
            bars_held: 0,
        });
        Some(EntryFill {
            ts_ns,
            side,
            contracts: CONTRACTS,
            price: self.spec.from_ticks(entry),
            stop_price: self.spec.from_ticks(stop),
            target_price: self.spec.from_ticks(target),
            commission,
        })
    }

    /// Applies the bracket and the drawdown level to the path; closes and returns
    /// the trade when one of them is hit.
    fn check_bracket(&mut self, path: &PricePath) -> Option<TradeRecord> {
        let mut pos = self.position?;
        let open = pos.favour(path.open);
        let (a, b) = (pos.favour(path.high), pos.favour(path.low));
        let (best, worst) = (a.max(b), a.min(b));
        let stop = pos.favour(pos.stop);
        let target = pos.favour(pos.target);
        if worst > stop && best <= target && !self.may_breach_at(worst) {
            return None;
        }
        // Going against us, the path meets the higher of the two adverse levels first.
        let (adverse, adverse_reason) = match self.breach_level() {
            Some(level) if level > stop => (level, ExitReason::Drawdown),
            _ => (stop, ExitReason::Stop),
        };
        let (fill, reason) = if open <= adverse {
            let reason = if open <= stop {
                ExitReason::Stop
            } else {
                adverse_reason
            };
            (open - self.slippage, reason)
        } else if open > target {
            pos.saw(open);
            (target, ExitReason::Target)
        } else if worst <= adverse {
            pos.saw(open);
            (adverse - self.slippage, adverse_reason)
        } else if best > target {
            pos.saw(worst);
            (target, ExitReason::Target)
        } else {
            return None;
        };
        Some(self.close(pos, path.ts_ns, fill, reason))
    }

    /// Closes the position with an exit fill `fill` ticks in its favour.
    fn close(
        &mut self,
        mut pos: OpenPosition,
        ts_ns: i64,
        fill: i64,
        reason: ExitReason,
    ) -> TradeRecord {
        self.position = None;
        pos.saw(fill);
        let gross = self.dollars(fill);
        let commission = self.config.commission_per_side * CONTRACTS as f64;
        self.balance += gross - commission;
        self.realized_gross += gross;
        self.commissions += commission;
        self.trades += 1;
        TradeRecord {
            side: pos.side,
            contracts: CONTRACTS,
            entry_ts_ns: pos.entry_ts_ns,
            exit_ts_ns: ts_ns,
            entry_price: self.spec.from_ticks(pos.entry),
            exit_price: self.spec.from_ticks(pos.price_at(fill)),
            gross_pnl: gross,
            commission: 2.0 * commission,
            net_pnl: gross - 2.0 * commission,
            exit_reason: reason,
            bars_held: pos.bars_held,
            mae: self.dollars(pos.worst),
            mfe: self.dollars(pos.best),
        }
    }
}
