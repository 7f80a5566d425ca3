//! The engine's costs that matter live: a tick that closes no bar, and a
//! decision (bar close: features, observation, normalisation, MLP
//! 231->256->256->6, mask, order) through `Engine::on_tick`, without and with
//! `Engine::prepare_next_decision` run (untimed) in the idle time before it.
//!
//! `taskset -c 1 cargo bench -p nq-runtime --bench engine`
//! (add `RUSTFLAGS="-C target-cpu=native"` for the native figures).
//!
//! Medians on one core of the 2-core AMD EPYC (Zen 4) dev box, idle
//! (2026-11-26, session 3): portable build (AVX kernels chosen at run time)
//! a decision 6.04 us, prepared 4.09 us, a tick 26 ns; `target-cpu=native`
//! 5.67 us, prepared 3.78 us, a tick 33 ns. Before run-time dispatch the
//! portable build ran SSE2 only: 9.5-9.9 us.

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use nq_formats::checkpoint::Activation;
use nq_formats::{SessionHours, Side, Tick};
use nq_runtime::engine::{Engine, EngineConfig};
use nq_runtime::policy::{Checkpoint, Policy};

/// A session covering the whole day but its last minute, so nearly every bar
/// close is a policy decision.
fn all_day_engine(bytes: &[u8]) -> Engine<'_> {
    let policy = Policy::from_checkpoint(&Checkpoint::parse(bytes).unwrap()).unwrap();
    assert!(policy.weights_in_place());
    let mut config = EngineConfig::from_policy(&policy);
    config.sim.session = SessionHours::parse("00:00-23:59").unwrap();
    config.sim.max_drawdown = 0.0;
    Engine::new(policy, config).unwrap()
}

const START: i64 = 1_704_672_000_000_000_000; // 2024-01-08 00:00 UTC
const MINUTE: i64 = 60_000_000_000;

fn tick(ts_ns: i64, step: i64) -> Tick {
    Tick {
        ts_ns,
        price: 17_000.0 + ((step * 7) % 13) as f64 * 0.25,
        size: 1.0,
        side: Side::Buy,
    }
}

fn bench_engine(c: &mut Criterion) {
    let checkpoint = common::random_checkpoint(Activation::Tanh);
    let bytes = checkpoint.bytes();

    c.bench_function("engine_tick_without_bar_close", |b| {
        let mut engine = all_day_engine(bytes);
        // Ticks 1 ns apart stay inside one minute for 6e10 iterations.
        let mut ts = START;
        b.iter(|| {
            ts += 1;
            black_box(engine.on_tick(black_box(&tick(ts, ts))).ok())
        })
    });

    c.bench_function("engine_decision_231_256_256_6", |b| {
        let mut engine = all_day_engine(bytes);
        let mut step = 0i64;
        // Warm up the features (132 bars) before measuring.
        while engine.decision_count() == 0 {
            step += 1;
            let _ = engine.on_tick(&tick(START + step * MINUTE, step));
        }
        b.iter(|| {
            step += 1;
            black_box(
                engine
                    .on_tick(black_box(&tick(START + step * MINUTE, step)))
                    .ok(),
            )
        })
    });

    // As a live system runs it: `prepare_next_decision` in the idle time
    // between bars (not timed), then the tick that closes the bar.
    c.bench_function("engine_decision_prepared_231_256_256_6", |b| {
        let mut engine = all_day_engine(bytes);
        let mut step = 0i64;
        while engine.decision_count() == 0 {
            step += 1;
            let _ = engine.on_tick(&tick(START + step * MINUTE, step));
        }
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                engine.prepare_next_decision();
                step += 1;
                let closing = tick(START + step * MINUTE, step);
                let start = Instant::now();
                black_box(engine.on_tick(black_box(&closing)).ok());
                timed += start.elapsed();
            }
            timed
        });
        // Only session changes (a bar with no decision before the next one)
        // leave the prepared sums stale.
        assert!(
            engine.decision_count() < 100
                || engine.prepared_decisions() * 10 >= engine.decision_count() * 9,
            "prepared sums used in {} of {} decisions",
            engine.prepared_decisions(),
            engine.decision_count()
        );
    });
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
