//! Market-data throughput on one core: Parquet tick reading (SPEC target
//! >= 20 M ticks/s) and text import (>= 5 M lines/s).
//!
//! `CARGO_TARGET_DIR=/work/target-tools cargo bench -p nq-tools --bench read`
//! (set NQ_BENCH_TICKS to change the 5 M default).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nq_formats::{Side, Tick};
use nq_tools::market_data::{MarketReader, TickWriter};
use nq_tools::text_import::{parse_text, ImportOptions, Records};

fn tick_count() -> usize {
    std::env::var("NQ_BENCH_TICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000)
}

/// A random walk on the 0.25 grid with plausible NQ timing and sizes.
fn synthetic_ticks(n: usize) -> Vec<Tick> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut ticks_px = 64_000i64;
    (0..n)
        .map(|_| {
            let r = next();
            ts += (r % 50_000_000) as i64;
            ticks_px += (r >> 32) as i64 % 3 - 1;
            Tick {
                ts_ns: ts,
                price: ticks_px as f64 * 0.25,
                size: (1 + (r >> 40) % 5) as f64,
                side: [Side::Buy, Side::Sell, Side::None][((r >> 50) % 3) as usize],
            }
        })
        .collect()
}

fn read_all(path: &Path) -> (usize, f64) {
    let reader = MarketReader::open(path).unwrap();
    let mut n = 0;
    let mut sum = 0.0;
    reader
        .for_each_tick_chunk(|c| {
            n += c.len();
            sum += c.iter().map(|t| t.price).sum::<f64>();
            Ok(())
        })
        .unwrap();
    (n, sum)
}

fn bench(c: &mut Criterion) {
    let n = tick_count();
    let ticks = synthetic_ticks(n);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ticks.parquet");
    let mut w = TickWriter::create(&path).unwrap();
    w.write(&ticks).unwrap();
    w.finish().unwrap();

    let mut g = c.benchmark_group("parquet");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("read_ticks", |b| b.iter(|| black_box(read_all(&path))));
    g.finish();

    let mut text = String::with_capacity(n * 40);
    text.push_str("ts_utc_ns,price,size,side\n");
    for t in &ticks {
        writeln!(
            text,
            "{},{},{},{}",
            t.ts_ns,
            t.price,
            t.size,
            t.side.letter()
        )
        .unwrap();
    }
    let opts = ImportOptions::default();
    let mut g = c.benchmark_group("text");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("parse_csv_ticks", |b| {
        b.iter(|| {
            let mut count = 0usize;
            parse_text(Path::new("bench.csv"), text.as_bytes(), &opts, |r| {
                if let Records::Ticks(t) = r {
                    count += t.len();
                }
                Ok(())
            })
            .unwrap();
            black_box(count)
        })
    });
    let csv = dir.path().join("ticks.csv");
    std::fs::write(&csv, &text).unwrap();
    let out = dir.path().join("imported.parquet");
    g.bench_function("import_csv_to_parquet", |b| {
        b.iter(|| nq_tools::text_import::import_file(&csv, &out, &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
