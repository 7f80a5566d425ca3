//! Time bars from ticks (SPEC section 4).
//!
//! A bar covers `[start, start + len)` with `start = floor(ts / len) * len`
//! in UTC nanoseconds; for any whole number of minutes that is also aligned
//! to New York minutes, whose offsets are whole hours. A bar closes on the
//! first tick at or after its end ([`BarBuilder::push`]) or on a clock call
//! ([`BarBuilder::flush`]); intervals without trades make no bar.
//!
//! Bad ticks are refused with a [`TickRejected`] reason and leave the builder
//! unchanged, so a live feed survives a bad print.

use nq_formats::{Bar, Tick};

/// Why a tick was refused. The builder's state is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TickRejected {
    /// Price is NaN or infinite.
    NonFinitePrice,
    /// Price is zero or negative.
    NonPositivePrice,
    /// Size is NaN or infinite.
    NonFiniteSize,
    /// Size is negative.
    NegativeSize,
    /// Earlier than the last accepted tick.
    TimeWentBackwards,
    /// Falls in a bar that a clock flush already closed.
    BarAlreadyClosed,
    /// So close to `i64::MIN` that its bar start is not representable.
    TimestampOutOfRange,
}

impl TickRejected {
    pub const fn message(self) -> &'static str {
        match self {
            TickRejected::NonFinitePrice => "price is NaN or infinite",
            TickRejected::NonPositivePrice => "price is zero or negative",
            TickRejected::NonFiniteSize => "size is NaN or infinite",
            TickRejected::NegativeSize => "size is negative",
            TickRejected::TimeWentBackwards => "timestamp earlier than the previous tick",
            TickRejected::BarAlreadyClosed => "timestamp inside a bar already closed by flush",
            TickRejected::TimestampOutOfRange => "timestamp out of range",
        }
    }
}

impl core::fmt::Display for TickRejected {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for TickRejected {}

/// Builds time bars from a tick stream. O(1) per tick; a division only when a
/// new bar opens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BarBuilder {
    bar_ns: i64,
    bar: Bar,
    bar_end_ns: i64,
    is_open: bool,
    last_tick_ns: i64,
    /// Ticks before this instant belong to bars that are already closed.
    closed_until_ns: i64,
}

impl BarBuilder {
    /// A builder of bars `bar_seconds` long (0 is read as 1).
    pub const fn new(bar_seconds: u32) -> BarBuilder {
        let seconds = if bar_seconds == 0 { 1 } else { bar_seconds };
        BarBuilder {
            bar_ns: nq_formats::market::bar_ns(seconds),
            bar: Bar {
                ts_ns: 0,
                open: 0.0,
                high: 0.0,
                low: 0.0,
                close: 0.0,
                volume: 0.0,
            },
            bar_end_ns: 0,
            is_open: false,
            last_tick_ns: i64::MIN,
            closed_until_ns: i64::MIN,
        }
    }

    /// Bar length in nanoseconds.
    pub const fn bar_ns(&self) -> i64 {
        self.bar_ns
    }

    /// The bar being built, if a tick has opened one.
    pub const fn open_bar(&self) -> Option<&Bar> {
        if self.is_open {
            Some(&self.bar)
        } else {
            None
        }
    }

    /// Timestamp of the last accepted tick (`i64::MIN` before the first).
    pub const fn last_tick_ns(&self) -> i64 {
        self.last_tick_ns
    }

    /// Adds a trade. Returns the bar it closed, if it is the first tick at or
    /// after the open bar's end.
    #[inline]
    pub fn push(&mut self, tick: &Tick) -> Result<Option<Bar>, TickRejected> {
        validate(tick)?;
        let ts = tick.ts_ns;
        if ts < self.last_tick_ns {
            return Err(TickRejected::TimeWentBackwards);
        }
        if self.is_open && ts < self.bar_end_ns {
            self.last_tick_ns = ts;
            let bar = &mut self.bar;
            if tick.price > bar.high {
                bar.high = tick.price;
            }
            if tick.price < bar.low {
                bar.low = tick.price;
            }
            bar.close = tick.price;
            bar.volume += tick.size;
            return Ok(None);
        }
        self.open_new_bar(tick)
    }

    #[cold]
    fn open_new_bar(&mut self, tick: &Tick) -> Result<Option<Bar>, TickRejected> {
        let ts = tick.ts_ns;
        if ts < self.closed_until_ns {
            return Err(TickRejected::BarAlreadyClosed);
        }
        let start = ts
            .checked_sub(ts.rem_euclid(self.bar_ns))
            .ok_or(TickRejected::TimestampOutOfRange)?;
        let closed = self.close();
        self.bar = Bar {
            ts_ns: start,
            open: tick.price,
            high: tick.price,
            low: tick.price,
            close: tick.price,
            volume: tick.size,
        };
        self.bar_end_ns = start.saturating_add(self.bar_ns);
        self.is_open = true;
        self.last_tick_ns = ts;
        Ok(closed)
    }

    /// Clock-driven close: returns the open bar if `now_ns` is at or after its
    /// end. Later ticks inside that bar's interval are refused.
    pub fn flush(&mut self, now_ns: i64) -> Option<Bar> {
        if self.is_open && now_ns >= self.bar_end_ns {
            self.close()
        } else {
            None
        }
    }

    fn close(&mut self) -> Option<Bar> {
        if !self.is_open {
            return None;
        }
        self.is_open = false;
        self.closed_until_ns = self.bar_end_ns;
        Some(self.bar)
    }
}

#[inline]
fn validate(tick: &Tick) -> Result<(), TickRejected> {
    // One branch on the hot path; NaN fails every comparison.
    let (price, size) = (tick.price, tick.size);
    if price > 0.0 && price < f64::INFINITY && (0.0..f64::INFINITY).contains(&size) {
        return Ok(());
    }
    rejection(tick)
}

#[cold]
fn rejection(tick: &Tick) -> Result<(), TickRejected> {
    if !tick.price.is_finite() {
        return Err(TickRejected::NonFinitePrice);
    }
    if tick.price <= 0.0 {
        return Err(TickRejected::NonPositivePrice);
    }
    if !tick.size.is_finite() {
        return Err(TickRejected::NonFiniteSize);
    }
    if tick.size < 0.0 {
        return Err(TickRejected::NegativeSize);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use nq_formats::market::NS_PER_SEC;

    fn tick(ts_ns: i64, price: f64, size: f64) -> Tick {
        Tick {
            ts_ns,
            price,
            size,
            ..Tick::default()
        }
    }

    #[test]
    fn bars_close_on_the_first_tick_at_or_after_the_end() {
        let m = 60 * NS_PER_SEC;
        let mut b = BarBuilder::new(60);
        assert_eq!(b.push(&tick(10, 100.0, 1.0)), Ok(None));
        assert_eq!(b.push(&tick(m - 1, 101.0, 2.0)), Ok(None));
        let bar = b.push(&tick(m, 99.0, 3.0)).unwrap().unwrap();
        assert_eq!(
            bar,
            Bar {
                ts_ns: 0,
                open: 100.0,
                high: 101.0,
                low: 100.0,
                close: 101.0,
                volume: 3.0
            }
        );
        // A three-minute gap: the next bar starts at the tick's minute.
        let bar = b.push(&tick(4 * m + 5, 98.0, 1.0)).unwrap().unwrap();
        assert_eq!((bar.ts_ns, bar.open, bar.volume), (m, 99.0, 3.0));
        assert_eq!(b.open_bar().unwrap().ts_ns, 4 * m);
    }

    #[test]
    fn flush_closes_only_after_the_end_and_refuses_late_ticks() {
        let m = 60 * NS_PER_SEC;
        let mut b = BarBuilder::new(60);
        assert_eq!(b.flush(0), None);
        b.push(&tick(m + 1, 100.0, 1.0)).unwrap();
        assert_eq!(b.flush(2 * m - 1), None);
        assert_eq!(b.flush(2 * m).unwrap().ts_ns, m);
        assert_eq!(b.flush(3 * m), None);
        assert_eq!(
            b.push(&tick(2 * m - 1, 100.0, 1.0)),
            Err(TickRejected::BarAlreadyClosed)
        );
        assert_eq!(b.push(&tick(2 * m, 100.0, 1.0)), Ok(None));
    }

    #[test]
    fn bad_ticks_are_refused_without_changing_state() {
        let mut b = BarBuilder::new(60);
        b.push(&tick(1_000, 100.0, 1.0)).unwrap();
        let before = b;
        for (t, reason) in [
            (tick(2_000, f64::NAN, 1.0), TickRejected::NonFinitePrice),
            (
                tick(2_000, f64::INFINITY, 1.0),
                TickRejected::NonFinitePrice,
            ),
            (tick(2_000, 0.0, 1.0), TickRejected::NonPositivePrice),
            (tick(2_000, -1.0, 1.0), TickRejected::NonPositivePrice),
            (tick(2_000, 100.0, f64::NAN), TickRejected::NonFiniteSize),
            (tick(2_000, 100.0, -1.0), TickRejected::NegativeSize),
            (tick(999, 100.0, 1.0), TickRejected::TimeWentBackwards),
        ] {
            assert_eq!(b.push(&t), Err(reason));
            assert_eq!(b, before);
        }
        let mut b = BarBuilder::new(60);
        assert_eq!(
            b.push(&tick(i64::MIN, 1.0, 1.0)),
            Err(TickRejected::TimestampOutOfRange)
        );
        b.push(&tick(i64::MAX, 1.0, 1.0)).unwrap();
        assert_eq!(b.flush(i64::MAX).map(|bar| bar.volume), Some(1.0));
    }
}
