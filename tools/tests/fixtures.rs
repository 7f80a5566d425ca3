//! Parquet files written by pyarrow and pandas in each SPEC section 3 variant
//! (tools/fixtures/make_fixtures.py) read as the same ticks; each bad file gives
//! its own error naming file, row and column.

use std::path::PathBuf;

use nq_formats::{Side, Tick};
use nq_tools::market_data::{read_bars, read_ticks, DataKind, MarketReader};
use nq_tools::Error;

const N: usize = 40;
const BASE_S: i64 = 1_700_000_000;
const BAD_ROW: u64 = 37;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures")).join(name)
}

/// The formula make_fixtures.py writes.
fn expected(with_side: bool) -> Vec<Tick> {
    (0..N)
        .map(|i| Tick {
            ts_ns: (BASE_S + i as i64) * 1_000_000_000,
            price: 15000.0 + (i % 7) as f64 * 0.25,
            size: (1 + i % 5) as f64,
            side: if with_side {
                [Side::Buy, Side::Sell, Side::None][i % 3]
            } else {
                Side::None
            },
        })
        .collect()
}

#[test]
fn every_tick_variant_reads_the_same_ticks() {
    for (name, with_side) in [
        ("good/ns_utc.parquet", true),
        ("good/us_naive_f32_int8side.parquet", true),
        ("good/ms_newyork_decimal.parquet", false),
        ("good/s_scaled_int.parquet", true),
        ("good/int64ns_nanoscale.parquet", true),
        ("good/pandas_ticks.parquet", true),
    ] {
        let reader = MarketReader::open(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(reader.kind(), DataKind::Ticks, "{name}");
        assert_eq!(reader.num_rows(), N as u64, "{name}");
        let ticks = reader
            .read_all_ticks()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ticks, expected(with_side), "{name}");
    }
}

#[test]
fn small_batches_cross_row_groups_without_changing_anything() {
    let reader = MarketReader::open(fixture("good/ns_utc.parquet"))
        .unwrap()
        .with_batch_size(7);
    let mut chunks = reader.tick_chunks().unwrap();
    let mut all = Vec::new();
    let mut sizes = Vec::new();
    while let Some(c) = chunks.next_chunk().unwrap() {
        sizes.push(c.len());
        all.extend_from_slice(c);
    }
    assert!(
        sizes.iter().all(|&s| s <= 7) && sizes.len() >= 6,
        "{sizes:?}"
    );
    assert_eq!(all, expected(true));
}

#[test]
fn pandas_bars_read_with_tz_aware_times() {
    let bars = read_bars(fixture("good/pandas_bars.parquet")).unwrap();
    assert_eq!(bars.len(), N);
    for (i, b) in bars.iter().enumerate() {
        let p = 15000.0 + (i % 7) as f64 * 0.25;
        assert_eq!(b.ts_ns, (BASE_S + 60 * i as i64) * 1_000_000_000);
        assert_eq!(
            (b.open, b.high, b.low, b.close),
            (p, p + 0.5, p - 0.25, p + 0.25)
        );
        assert_eq!(b.volume, ((1 + i % 5) * 10) as f64);
    }
    // Bars are not ticks.
    let err = read_ticks(fixture("good/pandas_bars.parquet")).unwrap_err();
    assert!(err.to_string().contains("holds bars"), "{err}");
}

#[test]
fn a_directory_reads_as_one_stream_in_time_order() {
    let reader = MarketReader::open(fixture("multi")).unwrap();
    let files = reader.files();
    assert!(files[0].ends_with("b_first_half.parquet"), "{files:?}");
    assert_eq!(reader.read_all_ticks().unwrap(), expected(true));
}

#[test]
fn overlapping_files_are_an_error() {
    let err = MarketReader::open(fixture("overlap"))
        .unwrap()
        .read_all_ticks()
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("part2.parquet")
            && msg.contains("files overlap")
            && msg.contains("part1.parquet"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 2);
}

fn bad_error(name: &str) -> Error {
    match MarketReader::open(fixture(name)).and_then(|r| r.read_all_ticks()) {
        Ok(_) => panic!("{name} read without error"),
        Err(e) => e,
    }
}

#[test]
fn each_bad_value_names_file_row_and_column() {
    for (name, column, words) in [
        ("bad/nan_price.parquet", "price", "NaN"),
        ("bad/inf_price.parquet", "price", "inf"),
        ("bad/zero_price.parquet", "price", "not positive"),
        ("bad/negative_price.parquet", "price", "not positive"),
        ("bad/null_price.parquet", "price", "null"),
        ("bad/negative_size.parquet", "size", "negative"),
        ("bad/bad_side.parquet", "side", "\"X\""),
        ("bad/time_backwards.parquet", "ts", "backwards"),
    ] {
        let err = bad_error(name);
        match &err {
            Error::BadValue {
                file,
                row,
                column: c,
                problem,
            } => {
                assert!(file.ends_with(name), "{name}: {err}");
                assert_eq!(*row, BAD_ROW, "{name}: {err}");
                assert_eq!(c, column, "{name}: {err}");
                assert!(problem.contains(words), "{name}: {err}");
            }
            other => panic!("{name}: expected a bad value, got {other}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("row {BAD_ROW}")) && msg.contains(&format!("`{column}`")),
            "{msg}"
        );
        assert_eq!(err.exit_code(), 2);
    }
}

#[test]
fn each_bad_schema_names_file_and_column() {
    for (name, words) in [
        ("bad/missing_price.parquet", "no price column"),
        ("bad/missing_time.parquet", "no time column"),
        ("bad/price_as_text.parquet", "column `price`: has type Utf8"),
        ("bad/time_as_float.parquet", "column `ts`: has type Float64"),
        ("bad/int_price_without_scale.parquet", "price_scale"),
        ("bad/not_parquet.parquet", "not a readable Parquet file"),
    ] {
        let err = bad_error(name);
        let msg = err.to_string();
        assert!(matches!(err, Error::BadFile { .. }), "{name}: {msg}");
        assert!(msg.contains(name) && msg.contains(words), "{name}: {msg}");
        assert_eq!(err.exit_code(), 2);
    }
}
