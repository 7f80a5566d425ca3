//! nq-tools: market-data I/O and the nq command-line tools.
//!
//! # Reading ticks or bars
//! [`market_data::MarketReader`] reads one Parquet file, a directory of them or
//! a list, in any variant of SPEC section 3 (timestamp of any unit, with or
//! without time zone, or int64 ns; float64/float32/decimal128/fixed-point int
//! prices; any numeric size; utf8 or int8 side; column-name aliases), as one
//! time-ordered stream of validated [`nq_formats::Tick`] or [`nq_formats::Bar`]
//! chunks, one batch at a time (bounded memory):
//!
//! ```no_run
//! use nq_tools::market_data::{DataKind, MarketReader};
//! let reader = MarketReader::open("data/")?;          // file or directory
//! match reader.kind() {
//!     DataKind::Ticks => reader.for_each_tick_chunk(|ticks| {
//!         // ticks: &[Tick], time-ordered, prices finite and positive
//!         Ok(())
//!     })?,
//!     DataKind::Bars => {
//!         let bars = reader.read_all_bars()?;
//!     }
//! }
//! // Pull style, e.g. to merge with another stream:
//! let mut chunks = MarketReader::open("ticks.parquet")?.tick_chunks()?;
//! while let Some(chunk) = chunks.next_chunk()? { /* ... */ }
//! # Ok::<(), nq_tools::Error>(())
//! ```
//!
//! # Writing
//! [`market_data::TickWriter`] / [`market_data::BarWriter`] stream records into
//! the `nq_formats::schema` tables (Snappy), through `<path>.tmp` renamed by
//! `finish()`, so a failed write leaves no partial file.
//!
//! # Text import
//! [`text_import::import_file`] converts CSV (`ts_utc_ns,...`, generic
//! `timestamp,...` with a time zone) and NinjaTrader exports into Parquet;
//! [`text_import::parse_text`] streams records to a callback.
//!
//! # Errors
//! Everything returns [`Error`]; its `Display` names the file and the row
//! (0-based Parquet row), line (1-based text line) and column at fault, and
//! [`Error::exit_code`] gives 2 for user errors and 1 for bugs (SPEC section 11).

pub mod checkpoint_file;
pub mod error;
pub mod eval;
pub mod inspect;
pub mod market_data;
pub mod signal;
pub mod split;
pub mod stdout;
pub mod synth;
pub mod text_import;
pub mod time;

pub use error::{Error, Result};
