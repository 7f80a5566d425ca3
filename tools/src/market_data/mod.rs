//! Ticks and bars in Parquet: a streaming reader that accepts every variant of
//! SPEC section 3, and writers that produce the `nq_formats::schema` tables.

mod as_bars;
mod columns;
mod reader;
mod writer;

pub use as_bars::read_as_bars;
pub use columns::{
    BAR_PRICE_COLUMNS, PRICE_ALIASES, PRICE_SCALE_KEY, SIDE_ALIASES, SIZE_ALIASES, TIME_ALIASES,
};
pub use reader::{read_bars, read_ticks, Chunks, MarketReader, DEFAULT_BATCH_ROWS};
pub use writer::{temp_path, BarWriter, MarketWriter, TickWriter, ROW_GROUP_ROWS};

/// What a market-data file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataKind {
    /// One row per trade: time, price, size, optional side.
    Ticks,
    /// One row per time bar: ts (bar start), open, high, low, close, volume.
    Bars,
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DataKind::Ticks => "ticks",
            DataKind::Bars => "bars",
        })
    }
}
