//! Built-in futures contract specifications (SPEC section 3).
//!
//! Prices are carried as `f64` in points, but every price the simulator uses is
//! snapped to the tick grid first; [`InstrumentSpec::to_ticks`] gives the exact
//! integer tick count for comparisons that must not suffer rounding.

use core::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Instrument {
    /// E-mini Nasdaq-100.
    Nq,
    /// Micro E-mini Nasdaq-100.
    Mnq,
    /// E-mini S&P 500.
    Es,
    /// Micro E-mini S&P 500.
    Mes,
    /// E-mini Dow ($5).
    Ym,
    /// E-mini Russell 2000.
    Rty,
}

/// Tick size and value of one contract.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstrumentSpec {
    pub instrument: Instrument,
    /// Minimum price increment, in points.
    pub tick_size: f64,
    /// Dollar value of one tick for one contract.
    pub tick_value: f64,
}

impl Instrument {
    pub const ALL: [Instrument; 6] = [
        Instrument::Nq,
        Instrument::Mnq,
        Instrument::Es,
        Instrument::Mes,
        Instrument::Ym,
        Instrument::Rty,
    ];

    pub const fn symbol(self) -> &'static str {
        match self {
            Instrument::Nq => "NQ",
            Instrument::Mnq => "MNQ",
            Instrument::Es => "ES",
            Instrument::Mes => "MES",
            Instrument::Ym => "YM",
            Instrument::Rty => "RTY",
        }
    }

    /// Parses a root symbol, case-insensitively ("nq", "NQ").
    pub fn from_symbol(symbol: &str) -> Option<Instrument> {
        Instrument::ALL
            .into_iter()
            .find(|i| i.symbol().eq_ignore_ascii_case(symbol))
    }

    pub const fn spec(self) -> InstrumentSpec {
        let (tick_size, tick_value) = match self {
            Instrument::Nq => (0.25, 5.00),
            Instrument::Mnq => (0.25, 0.50),
            Instrument::Es => (0.25, 12.50),
            Instrument::Mes => (0.25, 1.25),
            Instrument::Ym => (1.0, 5.00),
            Instrument::Rty => (0.10, 5.00),
        };
        InstrumentSpec {
            instrument: self,
            tick_size,
            tick_value,
        }
    }
}

impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl InstrumentSpec {
    /// Dollar value of a one-point move for one contract ($20 for NQ).
    pub fn point_value(&self) -> f64 {
        self.tick_value / self.tick_size
    }

    /// The nearest whole number of ticks to `price` (ties away from zero).
    pub fn to_ticks(&self, price: f64) -> i64 {
        libm::round(price / self.tick_size) as i64
    }

    pub fn from_ticks(&self, ticks: i64) -> f64 {
        // Multiplying an integer by the tick size reproduces the exchange's decimal
        // price exactly for 0.25 and 1.0 ticks; for 0.10 it is the nearest double.
        ticks as f64 * self.tick_size
    }

    /// `price` moved to the nearest point of the tick grid.
    pub fn snap(&self, price: f64) -> f64 {
        self.from_ticks(self.to_ticks(price))
    }

    /// The grid price at or below `price` (used for a long's stop, so it never
    /// ends up tighter than asked).
    pub fn snap_down(&self, price: f64) -> f64 {
        self.from_ticks(libm::floor(price / self.tick_size + 1e-9) as i64)
    }

    /// The grid price at or above `price`.
    pub fn snap_up(&self, price: f64) -> f64 {
        self.from_ticks(libm::ceil(price / self.tick_size - 1e-9) as i64)
    }

    /// Whether `price` lies on the grid, within floating-point noise.
    pub fn is_on_grid(&self, price: f64) -> bool {
        libm::fabs(price - self.snap(price)) <= self.tick_size * 1e-6
    }

    /// Dollar P&L of `contracts` contracts (negative for short) moving from
    /// `entry` to `exit`, before costs.
    pub fn pnl(&self, entry: f64, exit: f64, contracts: i32) -> f64 {
        let ticks = self.to_ticks(exit) - self.to_ticks(entry);
        ticks as f64 * self.tick_value * contracts as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nq_spec() {
        let nq = Instrument::Nq.spec();
        assert_eq!(nq.point_value(), 20.0);
        assert_eq!(nq.snap(15893.13), 15893.25);
        assert_eq!(nq.snap(15893.12), 15893.0);
        assert_eq!(nq.pnl(15000.0, 15010.0, 1), 200.0);
        assert_eq!(nq.pnl(15000.0, 15010.0, -1), -200.0);
        assert_eq!(Instrument::Es.spec().point_value(), 50.0);
        assert_eq!(Instrument::Rty.spec().point_value(), 50.0);
        assert_eq!(Instrument::Ym.spec().point_value(), 5.0);
        assert_eq!(Instrument::Mnq.spec().point_value(), 2.0);
        assert_eq!(Instrument::from_symbol("mes"), Some(Instrument::Mes));
        assert_eq!(Instrument::from_symbol("CL"), None);
    }

    proptest! {
        #[test]
        fn snapped_prices_lie_on_the_grid(p in 1.0f64..100_000.0, which in 0usize..6) {
            let spec = Instrument::ALL[which].spec();
            let s = spec.snap(p);
            prop_assert!(spec.is_on_grid(s));
            prop_assert!((s - p).abs() <= spec.tick_size / 2.0 + 1e-9);
            prop_assert!(spec.snap_down(p) <= p + 1e-9 && spec.snap_up(p) >= p - 1e-9);
            prop_assert_eq!(spec.snap(s), s);
        }
    }
}
