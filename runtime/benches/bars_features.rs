//! Per-tick bar building and per-bar `nq-obs-v1` features.
//! `cargo bench -p nq-runtime --bench bars_features`

#[path = "../tests/real_data/mod.rs"]
mod real_data;

use criterion::{criterion_group, criterion_main, Criterion};
use nq_formats::obs::OBS_DIM_PHASE2;
use nq_formats::{Bar, SessionHours, Tick};
use nq_runtime::bars::BarBuilder;
use nq_runtime::features::{FeatureConfig, FeatureEngine};
use nq_runtime::{ActionMask, PositionView};
use std::hint::black_box;

const MINUTE_NS: i64 = 60_000_000_000;

fn real_bars() -> Vec<Bar> {
    real_data::nq_1min_bars()
}

fn bench_ticks(c: &mut Criterion) {
    c.bench_function("bar_builder_push_no_close", |b| {
        let mut builder = BarBuilder::new(60);
        let mut ts = 1_700_000_000_000_000_000i64 - 1_700_000_000_000_000_000 % MINUTE_NS;
        let mut price = 16_000.0;
        b.iter(|| {
            // Stays inside one minute for ~60e9 iterations: no bar closes.
            ts += 1;
            price += if ts & 1 == 0 { 0.25 } else { -0.25 };
            let tick = Tick {
                ts_ns: ts,
                price,
                size: 1.0,
                ..Tick::default()
            };
            black_box(builder.push(black_box(&tick)))
        })
    });
}

fn bench_features(c: &mut Criterion) {
    let bars = real_bars();
    let config = FeatureConfig::nq_obs_v1(SessionHours::RTH, 0.25);
    let mut engine = FeatureEngine::new(config).unwrap();
    let mut minute = bars[0].ts_ns / MINUTE_NS;
    let mut i = 0;
    let mut next_bar = move || {
        // Real OHLCV cycled forever, on ever-later minutes.
        let mut bar = bars[i % bars.len()];
        i += 1;
        minute += 1;
        bar.ts_ns = minute * MINUTE_NS;
        bar
    };
    for _ in 0..200 {
        engine.on_bar(&next_bar()).unwrap();
    }
    c.bench_function("features_on_bar", |b| {
        b.iter(|| black_box(engine.on_bar(black_box(&next_bar())).is_ok()))
    });
    let position = PositionView {
        side: 1,
        entry_price: 16_000.0,
        stop_price: 15_990.0,
        target_price: 16_020.0,
        bars_held: 5,
        best_price: 16_010.0,
        worst_price: 15_995.0,
    };
    let mut obs = [0f32; OBS_DIM_PHASE2];
    c.bench_function("features_write_observation_phase2", |b| {
        b.iter(|| {
            engine
                .write_observation(
                    black_box(&position),
                    ActionMask::from_bits(0x3f),
                    2,
                    &mut obs,
                )
                .unwrap();
            black_box(obs[0])
        })
    });
}

criterion_group!(benches, bench_ticks, bench_features);
criterion_main!(benches);
