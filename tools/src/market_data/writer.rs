//! Streaming Parquet writers for ticks and bars in the schemas of
//! `nq_formats::schema`. Output goes to `<path>.tmp` and is renamed into place
//! by [`MarketWriter::finish`], so a failed or abandoned write leaves nothing
//! at `path`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow_schema::SchemaRef;
use nq_formats::{schema, Bar, Tick};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::error::{Error, Result};
use crate::time::format_ts;

/// Rows per Parquet row group: large enough for fast scans, small enough that
/// readers hold little in memory.
pub const ROW_GROUP_ROWS: usize = 1 << 20;

/// Writes ticks (`nq_formats::schema::ticks`).
pub type TickWriter = MarketWriter<Tick>;
/// Writes bars (`nq_formats::schema::bars`).
pub type BarWriter = MarketWriter<Bar>;

type ToBatch<R> = fn(&SchemaRef, &[R], &Path, u64) -> Result<RecordBatch>;

/// A Parquet file being written; see [`TickWriter`] and [`BarWriter`].
///
/// ```no_run
/// use nq_formats::{Side, Tick};
/// use nq_tools::market_data::TickWriter;
/// let mut w = TickWriter::create("out.parquet")?;
/// w.write(&[Tick { ts_ns: 1, price: 15000.25, size: 1.0, side: Side::Buy }])?;
/// let rows = w.finish()?;
/// # Ok::<(), nq_tools::Error>(())
/// ```
pub struct MarketWriter<R> {
    writer: Option<ArrowWriter<File>>,
    schema: SchemaRef,
    path: PathBuf,
    tmp: PathBuf,
    rows: u64,
    last_ts: i64,
    to_batch: ToBatch<R>,
    ts_of: fn(&R) -> i64,
}

impl MarketWriter<Tick> {
    /// Starts writing ticks to `path` (through `<path>.tmp`).
    pub fn create(path: impl AsRef<Path>) -> Result<TickWriter> {
        MarketWriter::start(path.as_ref(), schema::ticks(), ticks_to_batch, |t| t.ts_ns)
    }
}

impl MarketWriter<Bar> {
    /// Starts writing bars to `path` (through `<path>.tmp`).
    pub fn create(path: impl AsRef<Path>) -> Result<BarWriter> {
        MarketWriter::start(path.as_ref(), schema::bars(), bars_to_batch, |b| b.ts_ns)
    }
}

/// `<path>.tmp`, beside the final file so the rename stays on one file system.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

impl<R> MarketWriter<R> {
    fn start(
        path: &Path,
        schema: SchemaRef,
        to_batch: ToBatch<R>,
        ts_of: fn(&R) -> i64,
    ) -> Result<MarketWriter<R>> {
        let tmp = temp_path(path);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_size(ROW_GROUP_ROWS)
            // Every timestamp is new: a dictionary would only be built and dropped.
            .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
            .build();
        let writer = ArrowWriter::try_new(file, Arc::clone(&schema), Some(props)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::bad_file(&tmp, None, format!("cannot start Parquet file: {e}"))
        })?;
        Ok(MarketWriter {
            writer: Some(writer),
            schema,
            path: path.to_path_buf(),
            tmp,
            rows: 0,
            last_ts: i64::MIN,
            to_batch,
            ts_of,
        })
    }

    /// Appends records; they must continue in time order.
    pub fn write(&mut self, records: &[R]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut prev = self.last_ts;
        for (i, r) in records.iter().enumerate() {
            let ts = (self.ts_of)(r);
            if ts < prev {
                return Err(Error::bad_value(
                    &self.path,
                    self.rows + i as u64,
                    "ts",
                    format!(
                        "time goes backwards: {} is before the previous row's {}",
                        format_ts(ts),
                        format_ts(prev)
                    ),
                ));
            }
            prev = ts;
        }
        let batch = (self.to_batch)(&self.schema, records, &self.path, self.rows)?;
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| Error::Internal("write after finish".into()))?;
        writer
            .write(&batch)
            .map_err(|e| Error::bad_file(&self.tmp, None, format!("cannot write: {e}")))?;
        self.last_ts = prev;
        self.rows += records.len() as u64;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the file and renames it into place; returns the rows written.
    pub fn finish(mut self) -> Result<u64> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| Error::Internal("finish twice".into()))?;
        let file = writer.into_inner().map_err(|e| {
            Error::bad_file(&self.tmp, None, format!("cannot finish Parquet file: {e}"))
        })?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(self.rows)
    }
}

impl<R> Drop for MarketWriter<R> {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            // Not finished: an error or an early return. Leave no partial output.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn ts_array(ts: impl Iterator<Item = i64>) -> ArrayRef {
    Arc::new(TimestampNanosecondArray::from_iter_values(ts).with_timezone("UTC"))
}

fn whole_numbers(
    values: impl Iterator<Item = f64>,
    path: &Path,
    first_row: u64,
    column: &str,
) -> Result<ArrayRef> {
    let mut out = Vec::with_capacity(values.size_hint().0);
    for (i, v) in values.enumerate() {
        // 2^63 bounds what int64 holds; fract() rejects NaN too.
        if v.fract() != 0.0 || v.abs() >= 9.2e18 || v < 0.0 {
            return Err(Error::bad_value(
                path,
                first_row + i as u64,
                column,
                format!("{v} is not a whole, non-negative number of contracts (the schema stores int64)"),
            ));
        }
        out.push(v as i64);
    }
    Ok(Arc::new(Int64Array::from(out)))
}

fn ticks_to_batch(
    schema: &SchemaRef,
    ticks: &[Tick],
    path: &Path,
    first_row: u64,
) -> Result<RecordBatch> {
    let columns: Vec<ArrayRef> = vec![
        ts_array(ticks.iter().map(|t| t.ts_ns)),
        Arc::new(Float64Array::from_iter_values(
            ticks.iter().map(|t| t.price),
        )),
        whole_numbers(ticks.iter().map(|t| t.size), path, first_row, "size")?,
        Arc::new(StringArray::from_iter_values(
            ticks.iter().map(|t| t.side.letter()),
        )),
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| Error::Internal(e.to_string()))
}

fn bars_to_batch(
    schema: &SchemaRef,
    bars: &[Bar],
    path: &Path,
    first_row: u64,
) -> Result<RecordBatch> {
    let price = |f: fn(&Bar) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(bars.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        ts_array(bars.iter().map(|b| b.ts_ns)),
        price(|b| b.open),
        price(|b| b.high),
        price(|b| b.low),
        price(|b| b.close),
        whole_numbers(bars.iter().map(|b| b.volume), path, first_row, "volume")?,
    ];
    RecordBatch::try_new(Arc::clone(schema), columns).map_err(|e| Error::Internal(e.to_string()))
}
