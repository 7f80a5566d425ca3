//! Streaming Parquet reader for ticks and bars, one file or many.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use nq_formats::{Bar, Side, Tick};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
    ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;

use super::columns::{
    backwards_message, decode_price, decode_side, decode_size, decode_time, BatchCtx, Layout,
    PRICE_SCALE_KEY,
};
use super::DataKind;
use crate::error::{Error, Result};
use crate::time::format_ts;

/// Rows decoded per chunk unless [`MarketReader::with_batch_size`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 64 * 1024;

/// One input file, its layout and where it starts.
#[derive(Debug, Clone)]
struct Source {
    path: PathBuf,
    metadata: ArrowReaderMetadata,
    layout: Layout,
    rows: u64,
    first_ts: Option<i64>,
}

/// Reads ticks or bars from one Parquet file, a directory of them, or a list of
/// files, as one time-ordered stream.
///
/// Opening reads only the file footers (and the first timestamp of each file,
/// to order them); rows are decoded a batch at a time, so memory stays bounded
/// whatever the file size.
///
/// ```no_run
/// use nq_tools::market_data::{DataKind, MarketReader};
/// let reader = MarketReader::open("data/ticks.parquet")?;
/// assert_eq!(reader.kind(), DataKind::Ticks);
/// let mut volume = 0.0;
/// reader.for_each_tick_chunk(|ticks| {
///     volume += ticks.iter().map(|t| t.size).sum::<f64>();
///     Ok(())
/// })?;
/// # Ok::<(), nq_tools::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MarketReader {
    sources: Vec<Source>,
    kind: DataKind,
    batch_rows: usize,
}

impl MarketReader {
    /// Opens a Parquet file, or every `*.parquet` file directly inside a directory.
    pub fn open(path: impl AsRef<Path>) -> Result<MarketReader> {
        MarketReader::open_many(&[path.as_ref()])
    }

    /// Opens several files and/or directories as one stream. Files are ordered
    /// by their first timestamp; reading fails if one starts before the previous
    /// one ends.
    pub fn open_many<P: AsRef<Path>>(paths: &[P]) -> Result<MarketReader> {
        let mut files = Vec::new();
        for p in paths {
            let p = p.as_ref();
            if p.is_dir() {
                let mut in_dir: Vec<PathBuf> = std::fs::read_dir(p)
                    .map_err(|e| Error::io(p, e))?
                    .filter_map(|entry| entry.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file()
                            && f.extension()
                                .is_some_and(|x| x.eq_ignore_ascii_case("parquet"))
                    })
                    .collect();
                if in_dir.is_empty() {
                    return Err(Error::Usage(format!(
                        "{}: directory has no .parquet files",
                        p.display()
                    )));
                }
                in_dir.sort();
                files.extend(in_dir);
            } else {
                files.push(p.to_path_buf());
            }
        }
        if files.is_empty() {
            return Err(Error::Usage("no input files given".into()));
        }
        let mut sources = files
            .iter()
            .map(|f| open_source(f))
            .collect::<Result<Vec<_>>>()?;
        let kind = sources[0].layout.kind();
        if let Some(other) = sources.iter().find(|s| s.layout.kind() != kind) {
            return Err(Error::bad_file(
                &other.path,
                None,
                format!(
                    "holds {} but {} holds {}; one stream cannot mix them",
                    other.layout.kind(),
                    sources[0].path.display(),
                    kind
                ),
            ));
        }
        // Stable sort keeps the given order between files that start together.
        sources.sort_by_key(|s| s.first_ts.unwrap_or(i64::MIN));
        Ok(MarketReader {
            sources,
            kind,
            batch_rows: DEFAULT_BATCH_ROWS,
        })
    }

    /// Rows per decoded chunk (default [`DEFAULT_BATCH_ROWS`]).
    pub fn with_batch_size(mut self, rows: usize) -> MarketReader {
        self.batch_rows = rows.max(1);
        self
    }

    /// Whether the input holds ticks or bars.
    pub fn kind(&self) -> DataKind {
        self.kind
    }

    /// The input files in reading (time) order.
    pub fn files(&self) -> Vec<&Path> {
        self.sources.iter().map(|s| s.path.as_path()).collect()
    }

    /// The input files in reading order, each with its first timestamp
    /// (`None` for a file without rows). A file's records lie between its
    /// first timestamp and the next file's.
    pub fn file_starts(&self) -> Vec<(&Path, Option<i64>)> {
        self.sources
            .iter()
            .map(|s| (s.path.as_path(), s.first_ts))
            .collect()
    }

    /// Total rows over all files, from the footers.
    pub fn num_rows(&self) -> u64 {
        self.sources.iter().map(|s| s.rows).sum()
    }

    /// The column names used, in the first file, for (time, price or
    /// open/high/low/close, size or volume, side): what `inspect` reports.
    pub fn column_names(&self) -> Vec<String> {
        let Some(s) = self.sources.first() else {
            return Vec::new();
        };
        let schema = s.metadata.schema();
        s.layout
            .projection()
            .iter()
            .map(|&i| {
                let f = schema.field(i);
                format!("{}: {}", f.name(), f.data_type())
            })
            .collect()
    }

    /// A pull-style stream of tick chunks; fails if the input holds bars.
    pub fn tick_chunks(&self) -> Result<Chunks<Tick>> {
        self.expect(DataKind::Ticks)?;
        Ok(Chunks::new(self, decode_ticks))
    }

    /// A pull-style stream of bar chunks; fails if the input holds ticks.
    pub fn bar_chunks(&self) -> Result<Chunks<Bar>> {
        self.expect(DataKind::Bars)?;
        Ok(Chunks::new(self, decode_bars))
    }

    /// Calls `f` with each chunk of validated, time-ordered ticks.
    pub fn for_each_tick_chunk(&self, mut f: impl FnMut(&[Tick]) -> Result<()>) -> Result<()> {
        let mut chunks = self.tick_chunks()?;
        while let Some(chunk) = chunks.next_chunk()? {
            f(chunk)?;
        }
        Ok(())
    }

    /// Calls `f` with each chunk of validated, time-ordered bars.
    pub fn for_each_bar_chunk(&self, mut f: impl FnMut(&[Bar]) -> Result<()>) -> Result<()> {
        let mut chunks = self.bar_chunks()?;
        while let Some(chunk) = chunks.next_chunk()? {
            f(chunk)?;
        }
        Ok(())
    }

    /// Every tick in memory.
    pub fn read_all_ticks(&self) -> Result<Vec<Tick>> {
        let mut all = Vec::with_capacity(self.num_rows() as usize);
        self.for_each_tick_chunk(|c| {
            all.extend_from_slice(c);
            Ok(())
        })?;
        Ok(all)
    }

    /// Every bar in memory.
    pub fn read_all_bars(&self) -> Result<Vec<Bar>> {
        let mut all = Vec::with_capacity(self.num_rows() as usize);
        self.for_each_bar_chunk(|c| {
            all.extend_from_slice(c);
            Ok(())
        })?;
        Ok(all)
    }

    fn expect(&self, kind: DataKind) -> Result<()> {
        if self.kind == kind {
            return Ok(());
        }
        let file = self
            .sources
            .first()
            .map(|s| s.path.clone())
            .unwrap_or_default();
        Err(Error::bad_file(
            file,
            None,
            format!("holds {}, but {} are needed here", self.kind, kind),
        ))
    }
}

/// Reads every tick of a file or directory.
pub fn read_ticks(path: impl AsRef<Path>) -> Result<Vec<Tick>> {
    MarketReader::open(path)?.read_all_ticks()
}

/// Reads every bar of a file or directory.
pub fn read_bars(path: impl AsRef<Path>) -> Result<Vec<Bar>> {
    MarketReader::open(path)?.read_all_bars()
}

fn parquet_error(path: &Path, e: parquet::errors::ParquetError) -> Error {
    // Text market data is the usual mistake here; say how to convert it.
    let is_text = path
        .extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| ["csv", "txt"].contains(&x.to_ascii_lowercase().as_str()));
    let hint = if is_text {
        " (text data: convert it first with `nq-data import FILE -o FILE.parquet`)"
    } else {
        ""
    };
    Error::bad_file(
        path,
        None,
        format!("not a readable Parquet file: {e}{hint}"),
    )
}

fn open_source(path: &Path) -> Result<Source> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
        .map_err(|e| parquet_error(path, e))?;
    let file_kv = metadata.metadata().file_metadata().key_value_metadata();
    let price_scale = file_kv
        .and_then(|kv| kv.iter().find(|k| k.key == PRICE_SCALE_KEY))
        .and_then(|k| k.value.clone())
        .or_else(|| metadata.schema().metadata().get(PRICE_SCALE_KEY).cloned());
    let mut layout = Layout::resolve(path, metadata.schema(), price_scale.as_deref())?;
    let metadata = match layout.dictionary_side_hint(metadata.schema()) {
        Some(schema) => {
            let options = ArrowReaderOptions::new().with_schema(std::sync::Arc::new(schema));
            ArrowReaderMetadata::try_new(std::sync::Arc::clone(metadata.metadata()), options)
                .map_err(|e| parquet_error(path, e))?
        }
        None => metadata,
    };
    let rows = metadata.metadata().file_metadata().num_rows().max(0) as u64;
    let first_ts = first_timestamp(path, &file, &metadata, &layout)?;
    Ok(Source {
        path: path.to_path_buf(),
        metadata,
        layout,
        rows,
        first_ts,
    })
}

fn first_timestamp(
    path: &Path,
    file: &File,
    metadata: &ArrowReaderMetadata,
    layout: &Layout,
) -> Result<Option<i64>> {
    let Some(group) = metadata
        .metadata()
        .row_groups()
        .iter()
        .position(|g| g.num_rows() > 0)
    else {
        return Ok(None);
    };
    let file = file.try_clone().map_err(|e| Error::io(path, e))?;
    let ts = layout.ts_column();
    let mask = ProjectionMask::roots(metadata.parquet_schema(), [ts.file_index]);
    let mut reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata.clone())
        .with_projection(mask)
        .with_row_groups(vec![group])
        .with_batch_size(1)
        .with_limit(1)
        .build()
        .map_err(|e| parquet_error(path, e))?;
    let Some(batch) = reader.next() else {
        return Ok(None);
    };
    let batch = batch.map_err(|e| Error::bad_file(path, None, e.to_string()))?;
    let ctx = BatchCtx {
        file: path,
        first_row: 0,
    };
    let mut first = None;
    let mut projected = ts.clone();
    projected.batch_index = 0;
    decode_time(&ctx, &projected, batch.column(0), |_, v| first = Some(v))?;
    Ok(first)
}

type DecodeFn<R> =
    fn(&Layout, &BatchCtx<'_>, &RecordBatch, &mut Vec<R>, &mut Option<i64>) -> Result<()>;

/// A stream of validated, time-ordered chunks of ticks or bars; see
/// [`MarketReader::tick_chunks`]. Each chunk borrows the stream's buffer, so
/// call [`Chunks::next_chunk`] again only after you are done with the last one.
pub struct Chunks<R> {
    pending: std::vec::IntoIter<Source>,
    current: Option<(Source, ParquetRecordBatchReader, u64)>,
    previous_file: Option<PathBuf>,
    last_ts: Option<i64>,
    batch_rows: usize,
    buf: Vec<R>,
    decode: DecodeFn<R>,
}

impl<R> Chunks<R> {
    fn new(reader: &MarketReader, decode: DecodeFn<R>) -> Chunks<R> {
        Chunks {
            pending: reader.sources.clone().into_iter(),
            current: None,
            previous_file: None,
            last_ts: None,
            batch_rows: reader.batch_rows,
            buf: Vec::new(),
            decode,
        }
    }

    /// The next chunk, or `None` at the end of the last file.
    pub fn next_chunk(&mut self) -> Result<Option<&[R]>> {
        loop {
            if self.current.is_none() && !self.start_next_file()? {
                return Ok(None);
            }
            let Some((source, reader, next_row)) = self.current.as_mut() else {
                return Err(Error::Internal("no current file".into()));
            };
            match reader.next() {
                None => {
                    self.previous_file = Some(source.path.clone());
                    self.current = None;
                }
                Some(batch) => {
                    let batch = batch.map_err(|e| {
                        Error::bad_file(&source.path, None, format!("cannot decode row group: {e}"))
                    })?;
                    let ctx = BatchCtx {
                        file: &source.path,
                        first_row: *next_row,
                    };
                    *next_row += batch.num_rows() as u64;
                    (self.decode)(
                        &source.layout,
                        &ctx,
                        &batch,
                        &mut self.buf,
                        &mut self.last_ts,
                    )?;
                    if !self.buf.is_empty() {
                        return Ok(Some(&self.buf));
                    }
                }
            }
        }
    }

    fn start_next_file(&mut self) -> Result<bool> {
        let Some(source) = self.pending.next() else {
            return Ok(false);
        };
        if let (Some(first), Some(last), Some(prev)) =
            (source.first_ts, self.last_ts, &self.previous_file)
        {
            // Two bars of one time are one bar twice, whereas ticks of one
            // time are legal (several trades in one clock tick).
            let repeats_a_bar = first == last && source.layout.kind() == DataKind::Bars;
            if first < last || repeats_a_bar {
                let relation = if first < last {
                    "ends"
                } else {
                    "has its last bar"
                };
                return Err(Error::bad_value(
                    &source.path,
                    0,
                    &source.layout.ts_column().name,
                    format!(
                        "files overlap: this file starts at {} but {} {relation} at {}",
                        format_ts(first),
                        prev.display(),
                        format_ts(last)
                    ),
                ));
            }
        }
        let file = File::open(&source.path).map_err(|e| Error::io(&source.path, e))?;
        let mask =
            ProjectionMask::roots(source.metadata.parquet_schema(), source.layout.projection());
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(file, source.metadata.clone())
                .with_projection(mask)
                .with_batch_size(self.batch_rows)
                .build()
                .map_err(|e| parquet_error(&source.path, e))?;
        self.current = Some((source, reader, 0));
        Ok(true)
    }
}

fn price_problem(p: f64) -> Option<String> {
    if p.is_nan() {
        Some("price is NaN".into())
    } else if p.is_infinite() {
        Some(format!("price is {p}"))
    } else if p <= 0.0 {
        Some(format!("price {p} is not positive"))
    } else {
        None
    }
}

fn size_problem(s: f64) -> Option<String> {
    if s.is_nan() {
        Some("size is NaN".into())
    } else if s.is_infinite() {
        Some(format!("size is {s}"))
    } else if s < 0.0 {
        Some(format!("size {s} is negative"))
    } else {
        None
    }
}

fn decode_ticks(
    layout: &Layout,
    ctx: &BatchCtx<'_>,
    batch: &RecordBatch,
    out: &mut Vec<Tick>,
    last_ts: &mut Option<i64>,
) -> Result<()> {
    let Layout::Ticks(cols) = layout else {
        return Err(Error::Internal("tick decoder on a bar layout".into()));
    };
    out.clear();
    out.resize(batch.num_rows(), Tick::default());
    decode_time(ctx, &cols.ts, batch.column(cols.ts.batch_index), |i, v| {
        out[i].ts_ns = v
    })?;
    decode_price(
        ctx,
        &cols.price,
        batch.column(cols.price.batch_index),
        |i, v| out[i].price = v,
    )?;
    decode_size(
        ctx,
        &cols.size,
        batch.column(cols.size.batch_index),
        |i, v| out[i].size = v,
    )?;
    if let Some(side) = &cols.side {
        decode_side(ctx, side, batch.column(side.batch_index), |i, v| {
            out[i].side = v
        })?;
    } else {
        out.iter_mut().for_each(|t| t.side = Side::None);
    }
    let mut prev = last_ts.unwrap_or(i64::MIN);
    for (i, t) in out.iter().enumerate() {
        // One combined test keeps the common all-valid path to a single branch.
        let ok = t.ts_ns >= prev
            && t.price.is_finite()
            && t.price > 0.0
            && t.size >= 0.0
            && t.size.is_finite();
        if !ok {
            if let Some(p) = price_problem(t.price) {
                return Err(ctx.value_error(i, &cols.price.name, p));
            }
            if let Some(p) = size_problem(t.size) {
                return Err(ctx.value_error(i, &cols.size.name, p));
            }
            return Err(ctx.value_error(i, &cols.ts.name, backwards_message(t.ts_ns, prev)));
        }
        prev = t.ts_ns;
    }
    if !out.is_empty() {
        *last_ts = Some(prev);
    }
    Ok(())
}

fn decode_bars(
    layout: &Layout,
    ctx: &BatchCtx<'_>,
    batch: &RecordBatch,
    out: &mut Vec<Bar>,
    last_ts: &mut Option<i64>,
) -> Result<()> {
    let Layout::Bars(cols) = layout else {
        return Err(Error::Internal("bar decoder on a tick layout".into()));
    };
    out.clear();
    out.resize(batch.num_rows(), Bar::default());
    decode_time(ctx, &cols.ts, batch.column(cols.ts.batch_index), |i, v| {
        out[i].ts_ns = v
    })?;
    let [open, high, low, close] = &cols.prices;
    decode_price(ctx, open, batch.column(open.batch_index), |i, v| {
        out[i].open = v
    })?;
    decode_price(ctx, high, batch.column(high.batch_index), |i, v| {
        out[i].high = v
    })?;
    decode_price(ctx, low, batch.column(low.batch_index), |i, v| {
        out[i].low = v
    })?;
    decode_price(ctx, close, batch.column(close.batch_index), |i, v| {
        out[i].close = v
    })?;
    decode_size(
        ctx,
        &cols.volume,
        batch.column(cols.volume.batch_index),
        |i, v| out[i].volume = v,
    )?;
    let mut prev = *last_ts;
    for (i, b) in out.iter().enumerate() {
        // Strictly increasing: a repeated bar start is the same bar twice,
        // which the engine would drop without a word.
        if prev.is_none_or(|p| b.ts_ns > p) && b.is_consistent() {
            prev = Some(b.ts_ns);
            continue;
        }
        for (col, p) in [
            (open, b.open),
            (high, b.high),
            (low, b.low),
            (close, b.close),
        ] {
            if let Some(problem) = price_problem(p) {
                return Err(ctx.value_error(i, &col.name, problem));
            }
        }
        if let Some(p) = size_problem(b.volume) {
            return Err(ctx.value_error(i, &cols.volume.name, p));
        }
        if b.high < b.open.max(b.close).max(b.low) {
            return Err(ctx.value_error(
                i,
                &high.name,
                format!(
                    "high {} is below open {}, close {} or low {}",
                    b.high, b.open, b.close, b.low
                ),
            ));
        }
        if b.low > b.open.min(b.close) {
            return Err(ctx.value_error(
                i,
                &low.name,
                format!(
                    "low {} is above open {} or close {}",
                    b.low, b.open, b.close
                ),
            ));
        }
        let prev = prev.unwrap_or(i64::MIN);
        let problem = if b.ts_ns == prev {
            format!(
                "duplicate bar: {} is the start of the previous row's bar too",
                format_ts(b.ts_ns)
            )
        } else {
            backwards_message(b.ts_ns, prev)
        };
        return Err(ctx.value_error(i, &cols.ts.name, problem));
    }
    *last_ts = prev;
    Ok(())
}
