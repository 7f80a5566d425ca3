//! A read-only view of the simulated (or live) position, shared by the
//! simulator, which owns the state, and the features, which describe it.

/// The open position as the observation sees it. Prices are in points and lie
/// on the tick grid. When flat, `side == 0` and the other fields are zero.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PositionView {
    /// -1 short, 0 flat, +1 long.
    pub side: i8,
    pub entry_price: f64,
    pub stop_price: f64,
    pub target_price: f64,
    /// Closed bars since the entry fill.
    pub bars_held: u32,
    /// The most favourable price reached since entry (high for a long, low for a short).
    pub best_price: f64,
    /// The least favourable price reached since entry.
    pub worst_price: f64,
}

impl PositionView {
    pub const FLAT: PositionView = PositionView {
        side: 0,
        entry_price: 0.0,
        stop_price: 0.0,
        target_price: 0.0,
        bars_held: 0,
        best_price: 0.0,
        worst_price: 0.0,
    };

    pub const fn is_flat(&self) -> bool {
        self.side == 0
    }
}
