//! Which columns of a Parquet file hold what, and how each accepted Arrow type
//! turns into `i64` nanoseconds or `f64` values (SPEC section 3).

use std::path::Path;
use std::sync::Arc;

use arrow::compute::cast;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType,
};
use arrow_array::{Array, ArrayRef};
use arrow_schema::{DataType, Schema, TimeUnit};
use nq_formats::Side;

use crate::error::{Error, Result};
use crate::market_data::DataKind;
use crate::time::format_ts;

/// Accepted names of the time column, in order of preference.
pub const TIME_ALIASES: &[&str] = &["ts", "ts_event", "timestamp", "time", "datetime"];
/// Accepted names of a tick's price column.
pub const PRICE_ALIASES: &[&str] = &["price", "last", "px"];
/// Accepted names of a tick's size column and of a bar's volume column.
pub const SIZE_ALIASES: &[&str] = &["size", "volume", "qty", "quantity"];
/// Accepted names of the optional aggressor-side column.
pub const SIDE_ALIASES: &[&str] = &["side", "aggressor"];
/// Bar price columns.
pub const BAR_PRICE_COLUMNS: [&str; 4] = ["open", "high", "low", "close"];

/// The file-metadata key that gives the fixed-point scale of integer prices.
pub const PRICE_SCALE_KEY: &str = "price_scale";

/// How the time column is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) enum TimeEncoding {
    Timestamp(TimeUnit),
    Int64Nanos,
}

/// How a price column is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PriceEncoding {
    Float64,
    Float32,
    /// `value = raw / divisor` (`divisor = 10^scale`).
    Decimal128 {
        divisor: f64,
    },
    /// Fixed-point integers: `value = raw / divisor`.
    ScaledInt {
        divisor: f64,
    },
}

/// How a size or volume column is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SizeEncoding {
    Float64,
    Int64,
    /// Any other integer or float type, widened with Arrow's cast kernel.
    OtherNumeric,
}

/// How the side column is stored.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SideEncoding {
    Utf8,
    /// Strings in another physical form (large, view, dictionary).
    OtherString,
    /// Letters read as dictionary keys: each distinct letter is decoded once
    /// per batch instead of once per row.
    Dictionary,
    Int8,
    OtherInt,
}

/// One resolved column: its name in the file, its position in the projected
/// batch, and how to decode it.
#[derive(Debug, Clone)]
pub(crate) struct Column<E> {
    pub name: String,
    /// Index in the file's Arrow schema.
    pub file_index: usize,
    /// Index in the projected record batch (filled by [`Layout::finish_projection`]).
    pub batch_index: usize,
    pub encoding: E,
}

#[derive(Debug, Clone)]
pub(crate) struct TickColumns {
    pub ts: Column<TimeEncoding>,
    pub price: Column<PriceEncoding>,
    pub size: Column<SizeEncoding>,
    pub side: Option<Column<SideEncoding>>,
}

#[derive(Debug, Clone)]
pub(crate) struct BarColumns {
    pub ts: Column<TimeEncoding>,
    /// open, high, low, close.
    pub prices: [Column<PriceEncoding>; 4],
    pub volume: Column<SizeEncoding>,
}

/// Where ticks or bars live in one file.
#[derive(Debug, Clone)]
pub(crate) enum Layout {
    Ticks(TickColumns),
    Bars(BarColumns),
}

impl Layout {
    pub fn kind(&self) -> DataKind {
        match self {
            Layout::Ticks(_) => DataKind::Ticks,
            Layout::Bars(_) => DataKind::Bars,
        }
    }

    /// Works out the layout from the column names and types.
    /// `price_scale` is the file-metadata value under [`PRICE_SCALE_KEY`].
    pub fn resolve(file: &Path, schema: &Schema, price_scale: Option<&str>) -> Result<Layout> {
        let find = |aliases: &[&str]| -> Option<usize> {
            aliases.iter().find_map(|alias| {
                schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(alias))
            })
        };
        let found_names = || {
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let missing = |what: &str, aliases: &[&str]| {
            Error::bad_file(
                file,
                None,
                format!(
                    "no {what} column: expected one of {} (the file has: {})",
                    aliases.join(", "),
                    found_names()
                ),
            )
        };
        let scale = parse_price_scale(file, price_scale)?;

        let ts_index = find(TIME_ALIASES).ok_or_else(|| missing("time", TIME_ALIASES))?;
        let ts = time_column(file, schema, ts_index)?;

        let bar_prices: Vec<Option<usize>> = BAR_PRICE_COLUMNS.iter().map(|n| find(&[n])).collect();
        let layout = if bar_prices.iter().all(Option::is_some) {
            let volume_index = find(SIZE_ALIASES).ok_or_else(|| missing("volume", SIZE_ALIASES))?;
            let prices = [0, 1, 2, 3].map(|k| bar_prices[k].unwrap_or_default());
            let mut cols = Vec::with_capacity(4);
            for index in prices {
                cols.push(price_column(file, schema, index, scale)?);
            }
            let prices: [Column<PriceEncoding>; 4] = cols
                .try_into()
                .map_err(|_| Error::Internal("bar price columns".into()))?;
            Layout::Bars(BarColumns {
                ts,
                prices,
                volume: size_column(file, schema, volume_index)?,
            })
        } else {
            let price_index = find(PRICE_ALIASES).ok_or_else(|| {
                Error::bad_file(
                    file,
                    None,
                    format!(
                        "no price column: expected one of {} for ticks, or all of open, high, low, close for bars (the file has: {})",
                        PRICE_ALIASES.join(", "),
                        found_names()
                    ),
                )
            })?;
            let size_index = find(SIZE_ALIASES).ok_or_else(|| missing("size", SIZE_ALIASES))?;
            let side = match find(SIDE_ALIASES) {
                Some(i) => Some(side_column(file, schema, i)?),
                None => None,
            };
            Layout::Ticks(TickColumns {
                ts,
                price: price_column(file, schema, price_index, scale)?,
                size: size_column(file, schema, size_index)?,
                side,
            })
        };
        Ok(layout.finish_projection())
    }

    /// Reading a utf8 side column as a dictionary saves building a string per
    /// row; returns the file schema with that one field changed, when it applies.
    pub fn dictionary_side_hint(&mut self, schema: &Schema) -> Option<Schema> {
        let Layout::Ticks(TickColumns {
            side: Some(side), ..
        }) = self
        else {
            return None;
        };
        if !matches!(side.encoding, SideEncoding::Utf8) {
            return None;
        }
        side.encoding = SideEncoding::Dictionary;
        let fields: Vec<arrow_schema::FieldRef> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                if i == side.file_index {
                    Arc::new(f.as_ref().clone().with_data_type(dictionary_side_type()))
                } else {
                    Arc::clone(f)
                }
            })
            .collect();
        Some(Schema::new_with_metadata(fields, schema.metadata().clone()))
    }

    /// The file's schema indices to read, ascending.
    pub fn projection(&self) -> Vec<usize> {
        let mut v = match self {
            Layout::Ticks(c) => {
                let mut v = vec![c.ts.file_index, c.price.file_index, c.size.file_index];
                v.extend(c.side.as_ref().map(|s| s.file_index));
                v
            }
            Layout::Bars(c) => {
                let mut v = vec![c.ts.file_index, c.volume.file_index];
                v.extend(c.prices.iter().map(|p| p.file_index));
                v
            }
        };
        v.sort_unstable();
        v.dedup();
        v
    }

    pub fn ts_column(&self) -> &Column<TimeEncoding> {
        match self {
            Layout::Ticks(c) => &c.ts,
            Layout::Bars(c) => &c.ts,
        }
    }

    /// A projected batch holds the selected columns in ascending file order.
    fn finish_projection(mut self) -> Layout {
        let projection = self.projection();
        let pos = |c: usize| projection.iter().position(|&p| p == c).unwrap_or(0);
        match &mut self {
            Layout::Ticks(c) => {
                c.ts.batch_index = pos(c.ts.file_index);
                c.price.batch_index = pos(c.price.file_index);
                c.size.batch_index = pos(c.size.file_index);
                if let Some(s) = &mut c.side {
                    s.batch_index = pos(s.file_index);
                }
            }
            Layout::Bars(c) => {
                c.ts.batch_index = pos(c.ts.file_index);
                c.volume.batch_index = pos(c.volume.file_index);
                for p in &mut c.prices {
                    p.batch_index = pos(p.file_index);
                }
            }
        }
        self
    }
}

/// `price_scale` is either a divisor (`100` for cents, `1000000000` for
/// Databento's nano-dollars) or a multiplier below one (`0.01`, `1e-9`); both
/// mean the same, so either convention in the wild reads correctly.
fn parse_price_scale(file: &Path, value: Option<&str>) -> Result<Option<f64>> {
    let Some(text) = value else { return Ok(None) };
    let v: f64 = text.trim().parse().map_err(|_| {
        Error::bad_file(
            file,
            None,
            format!("file metadata `{PRICE_SCALE_KEY}` = {text:?} is not a number"),
        )
    })?;
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::bad_file(
            file,
            None,
            format!("file metadata `{PRICE_SCALE_KEY}` = {text:?} must be a positive number"),
        ));
    }
    Ok(Some(if v >= 1.0 { v } else { (1.0 / v).round() }))
}

fn wrong_type(file: &Path, schema: &Schema, index: usize, expected: &str) -> Error {
    let f = schema.field(index);
    Error::bad_file(
        file,
        Some(f.name()),
        format!("has type {}, expected {expected}", f.data_type()),
    )
}

fn column<E>(schema: &Schema, index: usize, encoding: E) -> Column<E> {
    Column {
        name: schema.field(index).name().clone(),
        file_index: index,
        batch_index: 0,
        encoding,
    }
}

fn time_column(file: &Path, schema: &Schema, index: usize) -> Result<Column<TimeEncoding>> {
    let encoding = match schema.field(index).data_type() {
        DataType::Timestamp(unit, _) => TimeEncoding::Timestamp(*unit),
        DataType::Int64 => TimeEncoding::Int64Nanos,
        _ => {
            return Err(wrong_type(
                file,
                schema,
                index,
                "a timestamp (any unit, with or without time zone) or int64 nanoseconds since the epoch",
            ))
        }
    };
    Ok(column(schema, index, encoding))
}

fn price_column(
    file: &Path,
    schema: &Schema,
    index: usize,
    scale: Option<f64>,
) -> Result<Column<PriceEncoding>> {
    let encoding = match schema.field(index).data_type() {
        DataType::Float64 => PriceEncoding::Float64,
        DataType::Float32 => PriceEncoding::Float32,
        DataType::Decimal128(_, s) => PriceEncoding::Decimal128 {
            divisor: 10f64.powi(i32::from(*s)),
        },
        DataType::Int64 | DataType::Int32 | DataType::UInt32 | DataType::UInt64 => match scale {
            Some(divisor) => PriceEncoding::ScaledInt { divisor },
            None => {
                return Err(Error::bad_file(
                    file,
                    Some(schema.field(index).name()),
                    format!(
                        "integer prices need a `{PRICE_SCALE_KEY}` key in the file metadata (e.g. 100 when prices are in hundredths)"
                    ),
                ))
            }
        },
        _ => {
            return Err(wrong_type(
                file,
                schema,
                index,
                "float64, float32, decimal128, or int64 with a `price_scale` file-metadata key",
            ))
        }
    };
    Ok(column(schema, index, encoding))
}

fn size_column(file: &Path, schema: &Schema, index: usize) -> Result<Column<SizeEncoding>> {
    let dt = schema.field(index).data_type();
    let encoding = match dt {
        DataType::Float64 => SizeEncoding::Float64,
        DataType::Int64 => SizeEncoding::Int64,
        d if d.is_integer() || d.is_floating() || matches!(d, DataType::Decimal128(..)) => {
            SizeEncoding::OtherNumeric
        }
        _ => return Err(wrong_type(file, schema, index, "an integer or float")),
    };
    Ok(column(schema, index, encoding))
}

fn side_column(file: &Path, schema: &Schema, index: usize) -> Result<Column<SideEncoding>> {
    let encoding = match schema.field(index).data_type() {
        DataType::Utf8 => SideEncoding::Utf8,
        DataType::LargeUtf8 | DataType::Utf8View => SideEncoding::OtherString,
        DataType::Dictionary(_, v)
            if matches!(
                v.as_ref(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) =>
        {
            SideEncoding::OtherString
        }
        DataType::Int8 => SideEncoding::Int8,
        d if d.is_integer() => SideEncoding::OtherInt,
        _ => {
            return Err(wrong_type(
                file,
                schema,
                index,
                "utf8 (B, A, N) or int8 (1 buy, -1 sell, 0 none)",
            ))
        }
    };
    Ok(column(schema, index, encoding))
}

/// Context for error messages while decoding one batch.
pub(crate) struct BatchCtx<'a> {
    pub file: &'a Path,
    /// Row index in the file of the batch's first row.
    pub first_row: u64,
}

impl BatchCtx<'_> {
    pub fn value_error(&self, i: usize, column: &str, problem: impl Into<String>) -> Error {
        Error::bad_value(self.file, self.first_row + i as u64, column, problem)
    }

    fn reject_nulls(&self, array: &dyn Array, column: &str) -> Result<()> {
        if array.null_count() == 0 {
            return Ok(());
        }
        let i = (0..array.len()).find(|&i| array.is_null(i)).unwrap_or(0);
        Err(self.value_error(i, column, "missing value (null)"))
    }

    fn cast_error(&self, column: &str, e: arrow_schema::ArrowError) -> Error {
        Error::bad_file(self.file, Some(column), format!("cannot convert: {e}"))
    }
}

/// Writes the time column into `set(i, ns)`.
pub(crate) fn decode_time(
    ctx: &BatchCtx<'_>,
    col: &Column<TimeEncoding>,
    array: &ArrayRef,
    mut set: impl FnMut(usize, i64),
) -> Result<()> {
    ctx.reject_nulls(array.as_ref(), &col.name)?;
    let scaled = |values: &[i64], mul: i64, set: &mut dyn FnMut(usize, i64)| -> Result<()> {
        for (i, &v) in values.iter().enumerate() {
            let ns = v.checked_mul(mul).ok_or_else(|| {
                ctx.value_error(
                    i,
                    &col.name,
                    format!("timestamp {v} is outside the nanosecond range (years 1677-2262)"),
                )
            })?;
            set(i, ns);
        }
        Ok(())
    };
    match col.encoding {
        TimeEncoding::Int64Nanos => {
            for (i, &v) in array
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .enumerate()
            {
                set(i, v);
            }
        }
        TimeEncoding::Timestamp(TimeUnit::Nanosecond) => {
            let a = array.as_primitive::<TimestampNanosecondType>();
            for (i, &v) in a.values().iter().enumerate() {
                set(i, v);
            }
        }
        TimeEncoding::Timestamp(TimeUnit::Microsecond) => scaled(
            array.as_primitive::<TimestampMicrosecondType>().values(),
            1_000,
            &mut set,
        )?,
        TimeEncoding::Timestamp(TimeUnit::Millisecond) => scaled(
            array.as_primitive::<TimestampMillisecondType>().values(),
            1_000_000,
            &mut set,
        )?,
        TimeEncoding::Timestamp(TimeUnit::Second) => scaled(
            array.as_primitive::<TimestampSecondType>().values(),
            1_000_000_000,
            &mut set,
        )?,
    }
    Ok(())
}

/// Writes a price column into `set(i, price)`; checks nothing but nulls.
pub(crate) fn decode_price(
    ctx: &BatchCtx<'_>,
    col: &Column<PriceEncoding>,
    array: &ArrayRef,
    mut set: impl FnMut(usize, f64),
) -> Result<()> {
    ctx.reject_nulls(array.as_ref(), &col.name)?;
    match col.encoding {
        PriceEncoding::Float64 => {
            for (i, &v) in array
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .enumerate()
            {
                set(i, v);
            }
        }
        PriceEncoding::Float32 => {
            for (i, &v) in array
                .as_primitive::<Float32Type>()
                .values()
                .iter()
                .enumerate()
            {
                set(i, f64::from(v));
            }
        }
        PriceEncoding::Decimal128 { divisor } => {
            for (i, &v) in array
                .as_primitive::<Decimal128Type>()
                .values()
                .iter()
                .enumerate()
            {
                set(i, v as f64 / divisor);
            }
        }
        PriceEncoding::ScaledInt { divisor } => {
            let wide = widen_to_i64(ctx, &col.name, array)?;
            for (i, &v) in wide.as_primitive::<Int64Type>().values().iter().enumerate() {
                set(i, v as f64 / divisor);
            }
        }
    }
    Ok(())
}

fn widen_to_i64(ctx: &BatchCtx<'_>, column: &str, array: &ArrayRef) -> Result<ArrayRef> {
    if array.data_type() == &DataType::Int64 {
        return Ok(Arc::clone(array));
    }
    let out = cast(array, &DataType::Int64).map_err(|e| ctx.cast_error(column, e))?;
    ctx.reject_nulls(out.as_ref(), column)?;
    Ok(out)
}

/// Writes a size column into `set(i, size)`; checks nothing but nulls.
pub(crate) fn decode_size(
    ctx: &BatchCtx<'_>,
    col: &Column<SizeEncoding>,
    array: &ArrayRef,
    mut set: impl FnMut(usize, f64),
) -> Result<()> {
    ctx.reject_nulls(array.as_ref(), &col.name)?;
    match col.encoding {
        SizeEncoding::Float64 => {
            for (i, &v) in array
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .enumerate()
            {
                set(i, v);
            }
        }
        SizeEncoding::Int64 => {
            for (i, &v) in array
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .enumerate()
            {
                set(i, v as f64);
            }
        }
        SizeEncoding::OtherNumeric => {
            let wide = cast(array, &DataType::Float64).map_err(|e| ctx.cast_error(&col.name, e))?;
            ctx.reject_nulls(wide.as_ref(), &col.name)?;
            for (i, &v) in wide
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .enumerate()
            {
                set(i, v);
            }
        }
    }
    Ok(())
}

/// Writes the side column into `set(i, side)`; nulls mean [`Side::None`].
pub(crate) fn decode_side(
    ctx: &BatchCtx<'_>,
    col: &Column<SideEncoding>,
    array: &ArrayRef,
    mut set: impl FnMut(usize, Side),
) -> Result<()> {
    let as_utf8;
    let as_i8;
    let array = match col.encoding {
        SideEncoding::Utf8 | SideEncoding::Int8 => array,
        SideEncoding::Dictionary if array.data_type() == &dictionary_side_type() => {
            return decode_side_dictionary(ctx, col, array, set);
        }
        SideEncoding::Dictionary => {
            as_utf8 = cast(array, &DataType::Utf8).map_err(|e| ctx.cast_error(&col.name, e))?;
            &as_utf8
        }
        SideEncoding::OtherString => {
            as_utf8 = cast(array, &DataType::Utf8).map_err(|e| ctx.cast_error(&col.name, e))?;
            &as_utf8
        }
        SideEncoding::OtherInt => {
            as_i8 = cast(array, &DataType::Int8).map_err(|e| ctx.cast_error(&col.name, e))?;
            // The cast turns codes that do not fit int8 into nulls; those are errors, not "no side".
            if as_i8.null_count() > array.null_count() {
                let i = (0..array.len())
                    .find(|&i| as_i8.is_null(i) && !array.is_null(i))
                    .unwrap_or(0);
                return Err(ctx.value_error(
                    i,
                    &col.name,
                    "side code out of range (1 buy, -1 sell, 0 none)",
                ));
            }
            &as_i8
        }
    };
    match array.data_type() {
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            for i in 0..a.len() {
                if a.is_null(i) {
                    set(i, Side::None);
                    continue;
                }
                let s = a.value(i);
                let side = Side::from_letter(s.trim()).ok_or_else(|| {
                    ctx.value_error(i, &col.name, format!("side {s:?} is not one of B, A, S, N"))
                })?;
                set(i, side);
            }
        }
        _ => {
            let a = array.as_primitive::<Int8Type>();
            for i in 0..a.len() {
                if a.is_null(i) {
                    set(i, Side::None);
                    continue;
                }
                let v = a.value(i);
                let side = Side::from_i8(v).ok_or_else(|| {
                    ctx.value_error(
                        i,
                        &col.name,
                        format!("side {v} is not one of 1 (buy), -1 or 2 (sell), 0 (none)"),
                    )
                })?;
                set(i, side);
            }
        }
    }
    Ok(())
}

/// The Arrow type the reader asks for a utf8 side column (see [`Layout::dictionary_side_hint`]).
pub(crate) fn dictionary_side_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn decode_side_dictionary(
    ctx: &BatchCtx<'_>,
    col: &Column<SideEncoding>,
    array: &ArrayRef,
    mut set: impl FnMut(usize, Side),
) -> Result<()> {
    let dict = array.as_dictionary::<Int32Type>();
    let values = cast(dict.values(), &DataType::Utf8).map_err(|e| ctx.cast_error(&col.name, e))?;
    let values = values.as_string::<i32>();
    let sides: Vec<Option<Side>> = (0..values.len())
        .map(|j| {
            if values.is_null(j) {
                Some(Side::None)
            } else {
                Side::from_letter(values.value(j).trim())
            }
        })
        .collect();
    let keys = dict.keys();
    let has_nulls = keys.null_count() > 0;
    for (i, &k) in keys.values().iter().enumerate() {
        if has_nulls && keys.is_null(i) {
            set(i, Side::None);
            continue;
        }
        match sides.get(k as usize) {
            Some(Some(side)) => set(i, *side),
            _ => {
                let text = values.value(k.max(0) as usize);
                return Err(ctx.value_error(
                    i,
                    &col.name,
                    format!("side {text:?} is not one of B, A, S, N"),
                ));
            }
        }
    }
    Ok(())
}

/// The message for a time that goes backwards.
pub(crate) fn backwards_message(ts: i64, previous: i64) -> String {
    format!(
        "time goes backwards: {} is before the previous row's {}",
        format_ts(ts),
        format_ts(previous)
    )
}
