//! What the simulator reports: fills, closed trades and refusals. Plain `Copy`
//! values, so the trainer can keep per-env statistics and `nq-eval` can write
//! `trades.parquet` rows without the simulator allocating.

use core::fmt;
use nq_formats::Action;

/// Why a position was closed. `name()` is the string written to the
/// `exit_reason` column of `trades.parquet`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExitReason {
    /// The policy closed it (Long+SELL or Short+BUY).
    Signal,
    /// The protective stop (initial or moved) was hit.
    Stop,
    /// The profit target was hit.
    Target,
    /// The caller flattened at the end of the session.
    SessionEnd,
    /// The trailing max drawdown was breached.
    Drawdown,
    /// The caller flattened because the data ran out.
    EndOfData,
    /// The execution system reported the position gone (live position sync).
    External,
}

impl ExitReason {
    pub const ALL: [ExitReason; 7] = [
        ExitReason::Signal,
        ExitReason::Stop,
        ExitReason::Target,
        ExitReason::SessionEnd,
        ExitReason::Drawdown,
        ExitReason::EndOfData,
        ExitReason::External,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            ExitReason::Signal => "SIGNAL",
            ExitReason::Stop => "STOP",
            ExitReason::Target => "TARGET",
            ExitReason::SessionEnd => "SESSION_END",
            ExitReason::Drawdown => "DRAWDOWN",
            ExitReason::EndOfData => "END_OF_DATA",
            ExitReason::External => "EXTERNAL",
        }
    }

    pub fn from_name(name: &str) -> Option<ExitReason> {
        ExitReason::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `"LONG"` or `"SHORT"`, the `side` column of `trades.parquet`.
pub const fn side_name(side: i8) -> &'static str {
    if side > 0 {
        "LONG"
    } else {
        "SHORT"
    }
}

/// An entry order filled and a position (with its bracket) opened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntryFill {
    pub ts_ns: i64,
    /// +1 long, -1 short.
    pub side: i8,
    pub contracts: i32,
    /// Fill price in points, slippage included, on the tick grid.
    pub price: f64,
    pub stop_price: f64,
    pub target_price: f64,
    /// Commission charged for this side, in dollars (already taken from the balance).
    pub commission: f64,
}

/// One round trip, as a `trades.parquet` row needs it. Money in dollars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeRecord {
    /// +1 long, -1 short.
    pub side: i8,
    pub contracts: i32,
    pub entry_ts_ns: i64,
    pub exit_ts_ns: i64,
    pub entry_price: f64,
    pub exit_price: f64,
    /// (exit - entry) x side x point value x contracts.
    pub gross_pnl: f64,
    /// Both sides.
    pub commission: f64,
    /// `gross_pnl - commission`.
    pub net_pnl: f64,
    pub exit_reason: ExitReason,
    /// Bars that closed while the position was open.
    pub bars_held: u32,
    /// Worst open P&L seen during the trade, before costs (<= 0).
    pub mae: f64,
    /// Best open P&L seen during the trade, before costs (>= 0).
    pub mfe: f64,
}

/// What one `on_tick` / `on_bar` call did. One contract and one pending order
/// bound it: at most one entry (a pending entry filling) and one exit (a signal
/// close, the bracket, or the drawdown) per call, the entry first.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SimEvents {
    pub entry: Option<EntryFill>,
    pub exit: Option<TradeRecord>,
    /// The trailing drawdown was breached during this call (the account stays
    /// breached; `Simulator::is_breached` tells later).
    pub breached: bool,
}

impl SimEvents {
    pub fn is_empty(&self) -> bool {
        self.entry.is_none() && self.exit.is_none() && !self.breached
    }
}

/// What an accepted `submit` did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Submitted {
    /// HOLD: nothing to do.
    Nothing,
    /// A market order was queued; it fills on the next tick or bar.
    OrderQueued,
    /// A position-management action moved the stop to this price, effective now.
    StopMoved { stop_price: f64 },
}

/// `submit` was given an action the mask forbids; the state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    pub action: Action,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "action {} is not allowed in the current state (masked)",
            self.action
        )
    }
}
