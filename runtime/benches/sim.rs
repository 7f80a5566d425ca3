//! Per-tick and per-decision cost of the execution simulator.
//! `cargo bench -p nq-runtime --bench sim`

use criterion::{criterion_group, criterion_main, Criterion};
use nq_formats::{Action, SimConfig, Tick};
use nq_runtime::sim::Simulator;
use std::hint::black_box;

/// A long with a wide bracket, so the ticks below never close it.
fn long_position() -> Simulator {
    let mut sim = Simulator::new(SimConfig::default()).unwrap();
    sim.submit(Action::Buy, 16_000.0, 20.0, 0).unwrap();
    sim.on_tick(&Tick {
        ts_ns: 1,
        price: 16_000.0,
        size: 1.0,
        ..Tick::default()
    });
    sim
}

fn bench_tick(c: &mut Criterion) {
    c.bench_function("sim_on_tick_in_position", |b| {
        let mut sim = long_position();
        let mut ts = 2i64;
        b.iter(|| {
            ts += 1;
            let tick = Tick {
                ts_ns: ts,
                price: 16_000.0 + (ts & 7) as f64 * 0.25,
                size: 1.0,
                ..Tick::default()
            };
            black_box(sim.on_tick(black_box(&tick)))
        })
    });
}

fn bench_decision(c: &mut Criterion) {
    c.bench_function("sim_mask_and_submit_in_position", |b| {
        let sim = long_position();
        b.iter(|| {
            let mut s = sim.clone();
            let mask = s.mask(black_box(16_030.0), black_box(20.0), 6);
            let action = if mask.allows(Action::TrailTighten) {
                Action::TrailTighten
            } else {
                Action::Hold
            };
            black_box(s.submit(action, 16_030.0, 20.0, 2))
        })
    });
}

criterion_group!(benches, bench_tick, bench_decision);
criterion_main!(benches);
