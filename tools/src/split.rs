//! Train/test split by trading date: what `nq-data split` does.
//!
//! Days are CME trading dates in New York time (a trade from 18:00 on belongs
//! to the next day), so an overnight session is never cut in two.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::NaiveDate;
use nq_formats::{Bar, Tick};

use crate::error::{Error, Result};
use crate::market_data::{BarWriter, DataKind, MarketReader, MarketWriter, TickWriter};
use crate::time::{format_date, NewYorkClock};

/// Where the test set starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitAt {
    /// Trading dates on or after this one go to the test set.
    From(NaiveDate),
    /// The last N trading dates go to the test set.
    LastDays(usize),
}

/// Rows and dates on each side.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SplitReport {
    pub kind: String,
    pub train_rows: u64,
    pub test_rows: u64,
    pub train_days: usize,
    pub test_days: usize,
    /// First trading date of the test set.
    pub test_from: String,
}

/// Splits `reader`'s rows into `train` and `test` Parquet files. Fails, writing
/// neither, if one side would be empty.
pub fn split(reader: &MarketReader, at: SplitAt, train: &Path, test: &Path) -> Result<SplitReport> {
    let mut clock = NewYorkClock::new();
    let mut dates = BTreeSet::new();
    match reader.kind() {
        DataKind::Ticks => reader.for_each_tick_chunk(|c| {
            dates.extend(c.iter().map(|t| clock.trading_date(t.ts_ns)));
            Ok(())
        })?,
        DataKind::Bars => reader.for_each_bar_chunk(|c| {
            dates.extend(c.iter().map(|b| clock.trading_date(b.ts_ns)));
            Ok(())
        })?,
    }
    let all: Vec<NaiveDate> = dates.into_iter().collect();
    let first_test = match at {
        SplitAt::From(d) => all.iter().position(|x| *x >= d),
        SplitAt::LastDays(n) => (n > 0 && n < all.len()).then(|| all.len() - n),
    };
    let cut = match first_test {
        Some(i) if i > 0 => all[i],
        _ => {
            return Err(Error::Usage(format!(
            "split leaves the train or the test set empty: the data has {} trading days ({} .. {})",
            all.len(),
            all.first().map(|d| format_date(*d)).unwrap_or_default(),
            all.last().map(|d| format_date(*d)).unwrap_or_default()
        )))
        }
    };
    let test_days = all.len() - all.iter().position(|d| *d == cut).unwrap_or(0);
    let (train_rows, test_rows) = match reader.kind() {
        DataKind::Ticks => write_sides(
            TickWriter::create(train)?,
            TickWriter::create(test)?,
            cut,
            |w, f| reader.for_each_tick_chunk(|c| f(w, c)),
            |t: &Tick| t.ts_ns,
        )?,
        DataKind::Bars => write_sides(
            BarWriter::create(train)?,
            BarWriter::create(test)?,
            cut,
            |w, f| reader.for_each_bar_chunk(|c| f(w, c)),
            |b: &Bar| b.ts_ns,
        )?,
    };
    Ok(SplitReport {
        kind: reader.kind().to_string(),
        train_rows,
        test_rows,
        train_days: all.len() - test_days,
        test_days,
        test_from: format_date(cut),
    })
}

type Sides<R> = (MarketWriter<R>, MarketWriter<R>);
type ChunkFn<'a, R> = &'a mut dyn FnMut(&mut Sides<R>, &[R]) -> Result<()>;

fn write_sides<R: Copy>(
    train: MarketWriter<R>,
    test: MarketWriter<R>,
    cut: NaiveDate,
    stream: impl FnOnce(&mut Sides<R>, ChunkFn<'_, R>) -> Result<()>,
    ts_of: fn(&R) -> i64,
) -> Result<(u64, u64)> {
    let mut clock = NewYorkClock::new();
    let mut sides = (train, test);
    let mut route = |sides: &mut Sides<R>, chunk: &[R]| -> Result<()> {
        // Time-ordered input: the chunk splits at most once.
        let at = chunk.partition_point(|r| clock.trading_date(ts_of(r)) < cut);
        sides.0.write(&chunk[..at])?;
        sides.1.write(&chunk[at..])
    };
    stream(&mut sides, &mut route)?;
    let (train, test) = sides;
    let train_path = train.path().to_path_buf();
    let train_rows = train.finish()?;
    match test.finish() {
        Ok(test_rows) => Ok((train_rows, test_rows)),
        Err(e) => {
            // Both or neither: undo the train file.
            let _ = std::fs::remove_file(&train_path);
            Err(e)
        }
    }
}
