//! Market records as the runtime consumes them: one trade, or one time bar.

/// The aggressor side of a trade, when the data has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Side {
    /// Unknown or not applicable (auction prints, data without the flag).
    #[default]
    None = 0,
    /// The buyer crossed the spread.
    Buy = 1,
    /// The seller crossed the spread.
    Sell = 2,
}

impl Side {
    /// Parses the letter codes used in tick files: `B`, `A` (ask-side aggressor,
    /// i.e. a seller), `S`, `N` or empty.
    pub fn from_letter(s: &str) -> Option<Side> {
        match s {
            "B" | "b" => Some(Side::Buy),
            "A" | "a" | "S" | "s" => Some(Side::Sell),
            "N" | "n" | "" => Some(Side::None),
            _ => None,
        }
    }

    /// Integer encodings: 1 buy, -1 (or 2) sell, 0 none.
    pub fn from_i8(v: i8) -> Option<Side> {
        match v {
            0 => Some(Side::None),
            1 => Some(Side::Buy),
            -1 | 2 => Some(Side::Sell),
            _ => None,
        }
    }

    pub const fn letter(self) -> &'static str {
        match self {
            Side::None => "N",
            Side::Buy => "B",
            Side::Sell => "A",
        }
    }
}

/// One trade print. `ts_ns` is nanoseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[repr(C)]
pub struct Tick {
    pub ts_ns: i64,
    pub price: f64,
    pub size: f64,
    pub side: Side,
}

/// One time bar, stamped with its start. `ts_ns` is nanoseconds since the Unix
/// epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[repr(C)]
pub struct Bar {
    pub ts_ns: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// A bar is consistent when its prices are finite and positive, `low <= open,
    /// close <= high`, and the volume is finite and not negative.
    pub fn is_consistent(&self) -> bool {
        let p = [self.open, self.high, self.low, self.close];
        p.iter().all(|x| x.is_finite() && *x > 0.0)
            && self.low <= self.open
            && self.low <= self.close
            && self.high >= self.open
            && self.high >= self.close
            && self.volume.is_finite()
            && self.volume >= 0.0
    }
}

/// Nanoseconds in one second.
pub const NS_PER_SEC: i64 = 1_000_000_000;

/// The length of a bar of `bar_seconds` in nanoseconds: the one place it is
/// computed (bar building, features, the simulator's decision times, reports).
pub const fn bar_ns(bar_seconds: u32) -> i64 {
    bar_seconds as i64 * NS_PER_SEC
}
