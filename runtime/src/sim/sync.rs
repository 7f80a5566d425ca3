//! Live position sync: the execution system's fills override the simulated
//! position, so the engine's next observation and mask describe what really
//! exists.

use super::{ExitReason, OpenPosition, Simulator, TradeRecord, CONTRACTS, OUT_OF_REACH};

/// The position as the execution system reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PositionSync {
    pub ts_ns: i64,
    /// -1, 0 or +1; anything else is read by its sign.
    pub side: i8,
    /// Average entry price (ignored when flat).
    pub entry_price: f64,
    /// The working stop and target; `None` keeps the simulator's leg for a
    /// position on the same side, or places the usual ATR leg for a new one.
    pub stop_price: Option<f64>,
    pub target_price: Option<f64>,
    /// ATR for a leg the simulator has to place itself.
    pub atr: f64,
}

impl Simulator {
    /// Makes the simulated position the reported one and cancels any pending
    /// order (the execution system has acted on it).
    ///
    /// - Same side: the trade keeps its history (entry time, bars held, best
    ///   and worst prices); entry, stop and target take the reported values.
    /// - A position the report no longer has (flat, or the other side) is
    ///   closed at the last price, without slippage, with reason
    ///   [`ExitReason::External`], and booked like any trade.
    /// - A new position is opened at the reported entry with one commission
    ///   charged, like a simulated entry.
    ///
    /// The books keep their identities (balance = start + closed trades' net
    /// P&L - an open entry's commission). An unusable entry price falls back to
    /// the last price seen; with no price at all the new position is not opened.
    /// Returns the trade closed, if any.
    pub fn sync_position(&mut self, report: &PositionSync) -> Option<TradeRecord> {
        self.pending = None;
        let side = report.side.signum();
        let reported = |p: Option<f64>| p.and_then(|p| self.price_ticks(p));
        let (stop_given, target_given) =
            (reported(report.stop_price), reported(report.target_price));
        let mut closed = None;
        if let Some(held) = self.position {
            if held.side == side {
                let entry = self.price_ticks(report.entry_price).unwrap_or(held.entry);
                let mut pos = OpenPosition {
                    entry,
                    stop: stop_given.unwrap_or(held.stop),
                    target: target_given.unwrap_or(held.target),
                    best: 0,
                    worst: 0,
                    ..held
                };
                // Best and worst are kept as prices, re-measured from the new entry.
                pos.saw(pos.favour(held.price_at(held.best)));
                pos.saw(pos.favour(held.price_at(held.worst)));
                self.position = Some(pos);
                return None;
            }
            let exit = self.last_price.unwrap_or(held.entry);
            closed = Some(self.close(held, report.ts_ns, held.favour(exit), ExitReason::External));
        }
        if side == 0 {
            return closed;
        }
        let entry = self.price_ticks(report.entry_price).or(self.last_price)?;
        let sign = side as i64;
        let (atr_stop, atr_target) = match self.atr_ticks(report.atr) {
            Some(atr) => self.bracket_ticks(side, entry, atr),
            None => (entry - sign * OUT_OF_REACH, entry + sign * OUT_OF_REACH),
        };
        let stop = stop_given.unwrap_or(atr_stop);
        let target = target_given.unwrap_or(atr_target);
        let commission = self.config.commission_per_side * CONTRACTS as f64;
        self.balance -= commission;
        self.commissions += commission;
        self.position = Some(OpenPosition {
            side,
            entry_ts_ns: report.ts_ns,
            entry,
            stop,
            target,
            best: 0,
            worst: 0,
            bars_held: 0,
        });
        if self.last_price.is_none() {
            self.last_price = Some(entry);
        }
        closed
    }

    /// Legs of the open position that sit out of reach (synced with neither
    /// a price for them nor a usable ATR) are placed from `atr` where an
    /// entry at the position's price would put them. Does nothing without a
    /// usable `atr`.
    pub fn place_missing_legs(&mut self, atr: f64) {
        let (Some(atr), Some(held), true) = (self.atr_ticks(atr), self.position, self.brackets)
        else {
            return;
        };
        let out_of_reach = |leg: i64| Self::out_of_reach(held.entry, leg);
        if !(out_of_reach(held.stop) || out_of_reach(held.target)) {
            return;
        }
        let (stop, target) = self.bracket_ticks(held.side, held.entry, atr);
        self.position = Some(OpenPosition {
            stop: if out_of_reach(held.stop) {
                stop
            } else {
                held.stop
            },
            target: if out_of_reach(held.target) {
                target
            } else {
                held.target
            },
            ..held
        });
    }

    /// Whether `price` is one the simulator can hold (finite, at least a tick,
    /// on a tick count it can represent): what a reported fill must be.
    pub fn holds_price(&self, price: f64) -> bool {
        self.price_ticks(price).is_some_and(|ticks| ticks > 0)
    }
}
