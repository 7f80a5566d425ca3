//! `nq-eval` end-to-end throughput on one core: Parquet read, bars, features,
//! policy decisions, simulation, summary and the report folder, for one
//! checkpoint over synthetic NQ ticks (issue target: >= 5 M ticks/s).
//!
//! `CARGO_TARGET_DIR=/work/target-main cargo bench -p nq-tools --bench eval`
//! (NQ_BENCH_DAYS sets the trading days generated, default 5).

use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use nq_tools::checkpoint_file::CheckpointFile;
use nq_tools::eval::report::write_report;
use nq_tools::eval::{replay, Comparison, Summary};
use nq_tools::market_data::{MarketReader, TickWriter};
use nq_tools::synth::{SynthConfig, SynthGenerator};

const CHECKPOINT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../runtime/fixtures/policy/policy_tanh_p1.safetensors"
);

fn write_synth(path: &Path) -> u64 {
    let days = std::env::var("NQ_BENCH_DAYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let generator = SynthGenerator::new(SynthConfig {
        days,
        ticks_per_rth_minute: 1000.0,
        ..SynthConfig::default()
    })
    .expect("valid synth settings");
    let mut writer = TickWriter::create(path).expect("temp file");
    let ticks: Vec<_> = generator.collect();
    writer.write(&ticks).expect("write ticks");
    writer.finish().expect("finish")
}

fn bench_eval(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("ticks.parquet");
    let n = write_synth(&data);
    let ckpt = CheckpointFile::read(CHECKPOINT).expect("fixture checkpoint");
    let report = dir.path().join("report");
    let mut group = c.benchmark_group("eval");
    group.throughput(Throughput::Elements(n));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function(format!("replay_and_report_{n}_ticks"), |b| {
        b.iter(|| {
            let reader = MarketReader::open(&data).expect("data");
            let run = replay(
                "bench",
                &ckpt,
                None,
                &reader,
                Default::default(),
                &mut |_| {},
            )
            .expect("replay");
            let comparison = Comparison::new("net_pnl", vec![Summary::of(&run)]);
            write_report(&report, std::slice::from_ref(&run), &comparison).expect("report");
        })
    });
    group.finish();
}

criterion_group!(benches, bench_eval);
criterion_main!(benches);
