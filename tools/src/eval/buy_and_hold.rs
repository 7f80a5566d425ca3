//! The buy-and-hold RTH baseline (SPEC section 10): each trading day, long one
//! contract from the first trade of regular trading hours (09:30 New York) to
//! the last one before 16:00, with no stop or target, whatever session the
//! checkpoint trades; one round trip a day.
//!
//! The engine decides at bar closes and gives every entry an ATR bracket, so
//! neither the 09:30 entry nor a position without a bracket can go through
//! its decisions. The trades therefore run on a runtime [`Simulator`] of
//! their own (the policy's slippage, commission and drawdown limit, so every
//! fill and every dollar is the runtime's arithmetic), entered the way an
//! execution system reports a fill: [`Simulator::sync_position`] at the
//! simulator's own market fill price, which charges the entry commission and,
//! given no bracket and no ATR, leaves both legs out of reach. An engine over
//! the checkpoint, set to RTH and always holding, runs beside it only to
//! place the equity rows at the same bar closes, with the same close and ATR,
//! as the other runs'.

use nq_formats::{Action, SessionHours, Tick};
use nq_runtime::calendar::SessionCalendar;
use nq_runtime::engine::{Decision, DecisionKind, DrawdownScope, Engine, EngineConfig};
use nq_runtime::policy::MAX_ACTIONS;
use nq_runtime::sim::{ExitReason, PositionSync, SimEvents, Simulator};
use nq_runtime::ActionMask;

use super::{
    closed_a_bar, hold, BarSpacing, DateRange, DecisionRow, EquityRow, Feed, RangeGate, RowKind,
    Run,
};
use crate::checkpoint_file::CheckpointFile;
use crate::market_data::{DataKind, MarketReader};
use crate::{Error, Result};

/// Replays the baseline over `data` (sessions in `range`) with the
/// simulator settings of `config` (or the checkpoint's), RTH whatever their
/// session.
pub(super) fn replay(
    name: &str,
    checkpoint: &CheckpointFile,
    config: Option<EngineConfig>,
    data: &MarketReader,
    range: DateRange,
    progress: &mut dyn FnMut(u64),
) -> Result<Run> {
    // The policy's settings, as its engine resolved them, but RTH.
    let rth = {
        let policy_engine = checkpoint.engine(config)?;
        let mut rth = config.unwrap_or_else(|| EngineConfig::from_policy(policy_engine.policy()));
        rth.sim = *policy_engine.simulator().config();
        rth.sim.session = SessionHours::RTH;
        rth
    };
    let engine = checkpoint.engine(Some(rth))?;
    let sim = Simulator::new(rth.sim)
        .map_err(|field| Error::Internal(format!("sim.{field} accepted by the engine")))?;
    let mut day = Day {
        engine,
        sim,
        drawdown: rth.drawdown,
        run: Run::new(name, "baseline", rth.sim),
        peak: rth.sim.starting_balance,
        held_since: None,
        entered: None,
        last_rth: None,
    };
    let mut gate = RangeGate::new(range);
    let mut spacing = BarSpacing::default();
    let mut last_ts = i64::MIN;
    let bar_ns = i64::from(rth.sim.bar_seconds) * 1_000_000_000;
    match data.kind() {
        DataKind::Ticks => data.for_each_tick_chunk(|ticks| {
            for tick in ticks {
                match gate.tick(tick.ts_ns) {
                    Feed::Skip => {}
                    Feed::WarmUp => {
                        let _ = day.engine.on_tick_with(tick, &mut hold);
                    }
                    Feed::Replay { row } => {
                        last_ts = tick.ts_ns;
                        day.on_tick(tick, row)?;
                    }
                }
            }
            day.run.records += ticks.len() as u64;
            progress(day.run.records);
            Ok(())
        })?,
        DataKind::Bars => data.for_each_bar_chunk(|bars| {
            for bar in bars {
                let feed = gate.bar(bar.ts_ns);
                if feed == Feed::Skip {
                    continue;
                }
                spacing.observe(bar.ts_ns);
                if feed == Feed::WarmUp {
                    day.engine.on_bar_with(bar, &mut hold);
                    continue;
                }
                last_ts = bar.ts_ns;
                day.on_bar(bar, bar_ns)?;
            }
            day.run.records += bars.len() as u64;
            progress(day.run.records);
            Ok(())
        })?,
    }
    spacing.check(
        data,
        rth.sim.bar_seconds,
        &format!("the checkpoint {name:?}"),
    )?;
    Ok(day.end_of_data(last_ts))
}

/// Where the baseline stands while replaying.
struct Day<'a> {
    /// Bar closes, close and ATR for the equity rows; never trades.
    engine: Engine<'a>,
    /// The baseline's own account.
    sim: Simulator,
    drawdown: DrawdownScope,
    run: Run,
    peak: f64,
    /// The RTH session (its id) the open position belongs to.
    held_since: Option<i64>,
    /// The last session a position was opened in: one round trip a day.
    entered: Option<i64>,
    /// The last RTH price and time: where a session's position is closed.
    last_rth: Option<(f64, i64)>,
}

/// The RTH session `ts_ns` falls in (its id), from the runtime's calendar:
/// `None` outside 09:30-16:00 New York.
fn rth_session(ts_ns: i64) -> Option<i64> {
    SessionCalendar::new(SessionHours::RTH)
        .session_at(ts_ns)
        .map(|s| s.id)
}

impl Day<'_> {
    fn on_tick(&mut self, tick: &Tick, row: bool) -> Result<()> {
        let bars_before = self.engine.features().bars_seen();
        let decision = self
            .engine
            .on_tick_with(tick, &mut |_, _| Action::Hold)
            .ok()
            .flatten();
        // The tick closed a bar: its row (a decision or not) sees the
        // position as it was before this tick.
        if row && closed_a_bar(&self.engine, bars_before) {
            self.sim.on_bar_close();
            self.push_row(decision.as_ref())?;
        }
        let session = rth_session(tick.ts_ns);
        self.close_if_session_over(session);
        self.open_if_first_of_session(session, tick.price, tick.ts_ns);
        let events = self.sim.on_tick(tick);
        self.book(events);
        if session.is_some() {
            self.last_rth = Some((tick.price, tick.ts_ns));
        }
        Ok(())
    }

    fn on_bar(&mut self, bar: &nq_formats::Bar, bar_ns: i64) -> Result<()> {
        let session = rth_session(bar.ts_ns);
        self.close_if_session_over(session);
        self.open_if_first_of_session(session, bar.open, bar.ts_ns);
        let events = self.sim.on_bar(bar);
        self.book(events);
        self.sim.on_bar_close();
        let end = bar.ts_ns.saturating_add(bar_ns);
        if session.is_some() {
            self.last_rth = Some((bar.close, end));
        }
        // Bars decide at their close, after their prices.
        let bars_before = self.engine.features().bars_seen();
        let decision = self.engine.on_bar_with(bar, &mut |_, _| Action::Hold);
        if closed_a_bar(&self.engine, bars_before) {
            self.push_row(decision.as_ref())?;
        }
        // The bar that reaches 16:00 is the session's last: close at its close.
        if session.is_some() && rth_session(end) != session {
            self.close_if_session_over(None);
        }
        Ok(())
    }

    /// A record outside the session the position was opened in (16:00 has
    /// passed, or a later day) closes it at that session's last price.
    fn close_if_session_over(&mut self, session: Option<i64>) {
        if self.held_since.is_none() || self.held_since == session {
            return;
        }
        self.held_since = None;
        if let Some((price, ts_ns)) = self.last_rth {
            if let Some(trade) = self.sim.flatten(price, ts_ns, ExitReason::SessionEnd) {
                self.run.trades.push(trade);
                self.run
                    .settle_backdated_exit(trade.exit_ts_ns, self.sim.balance());
            }
            self.run.breached |= self.sim.is_breached();
            self.mark();
        }
    }

    /// The session's first record opens the day's long at the market,
    /// slippage included, with no bracket.
    fn open_if_first_of_session(&mut self, session: Option<i64>, market: f64, ts_ns: i64) {
        let Some(date) = session else { return };
        if self.entered == Some(date) {
            return;
        }
        if self.drawdown == DrawdownScope::Session && self.sim.position_side() == 0 {
            // A new episode, as the engine starts one each session.
            self.sim.start_episode();
        }
        if self.sim.is_breached() || self.sim.position_side() != 0 {
            return;
        }
        let Some(entry_price) = self.sim.market_fill_price(1, market) else {
            return;
        };
        self.sim.sync_position(&PositionSync {
            ts_ns,
            side: 1,
            entry_price,
            stop_price: None,
            target_price: None,
            // No ATR: the simulator places no reachable leg.
            atr: f64::NAN,
        });
        self.entered = Some(date);
        self.held_since = Some(date);
    }

    fn book(&mut self, events: SimEvents) {
        if let Some(trade) = events.exit {
            self.run.trades.push(trade);
            self.held_since = None;
        }
        self.run.breached |= events.breached;
        self.mark();
    }

    fn mark(&mut self) {
        self.run
            .mark_equity(self.sim.equity_at_last(), &mut self.peak);
    }

    /// The row of the bar the engine just closed, with the baseline's own
    /// position and account. At a decision: never an order (HOLD), no
    /// bracket; flat is the target at a session end or after a breach.
    fn push_row(&mut self, decision: Option<&Decision>) -> Result<()> {
        let Some(d) = decision else {
            let row = EquityRow::without_decision(&self.engine, &self.sim)?;
            self.run.equity.push(row);
            return Ok(());
        };
        let position = self.sim.position_side();
        let kind = if self.sim.is_breached() {
            DecisionKind::DrawdownBreached
        } else {
            d.kind
        };
        let mut probs = [0.0; MAX_ACTIONS];
        probs[Action::Hold.code() as usize] = 1.0;
        let row = EquityRow {
            equity: self.sim.equity(d.close),
            position,
            kind: RowKind::Decision(kind),
            ..EquityRow::of_decision(d, self.sim.balance())
        };
        self.run.push_decision(
            row,
            DecisionRow {
                action: Action::Hold,
                probs,
                n_actions: d.n_actions,
                mask: ActionMask::HOLD_ONLY.bits(),
                target_position: if kind == DecisionKind::Policy {
                    position
                } else {
                    0
                },
                stop_price: None,
                target_price: None,
            },
        );
        Ok(())
    }

    /// The data ran out: a position still open closes at the last price.
    fn end_of_data(mut self, last_ts: i64) -> Run {
        self.run.open_at_end = self.sim.position_side();
        let price = self.sim.last_price().unwrap_or(f64::NAN);
        if let Some(trade) = self.sim.flatten(price, last_ts, ExitReason::EndOfData) {
            self.run.trades.push(trade);
        }
        self.run.breached |= self.sim.is_breached();
        self.run
    }
}
