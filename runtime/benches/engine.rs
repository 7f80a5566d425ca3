//! The engine's two costs that matter live: a tick that closes no bar, and a
//! decision (bar close: features, observation, normalisation, MLP
//! 231->256->256->6, mask, order), each through `Engine::on_tick`.
//!
//! `cargo bench -p nq-runtime --bench engine`
//! (add `RUSTFLAGS="-C target-cpu=native"` for the native figures).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nq_formats::checkpoint::{
    safetensors_bytes, Activation, PolicyMetadata, TensorData, MAX_LAYERS,
};
use nq_formats::{ActionSet, Instrument, SessionHours, Side, SimConfig, Tick, OBS_LAYOUT_V1};
use nq_runtime::engine::{Engine, EngineConfig};
use nq_runtime::policy::{Checkpoint, Policy, Rng};

/// A phase-2 231->256->256->6 tanh checkpoint with random weights, in 8-byte
/// aligned storage (so the weights are used in place).
fn checkpoint_words() -> (Vec<u64>, usize) {
    let mut hidden = [0u32; MAX_LAYERS];
    hidden[..2].copy_from_slice(&[256, 256]);
    let meta = PolicyMetadata {
        format_version: 1,
        obs_layout_hash: OBS_LAYOUT_V1.hash(),
        obs_dim: 231,
        actions: ActionSet::Phase2,
        hidden,
        hidden_len: 2,
        activation: Activation::Tanh,
        phase: 2,
        instrument: Instrument::Nq,
        bar_seconds: 60,
        timesteps: 0,
        update: 0,
        seed: 0,
        norm_clip: 10.0,
        norm_eps: 1e-8,
        sim: SimConfig::default(),
    };
    let mut rng = Rng::new(5);
    let widths = [231usize, 256, 256, 6];
    let mut owned: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for i in 0..3 {
        let bound = 1.0 / (widths[i] as f32).sqrt();
        let mut random = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| (rng.next_f32() * 2.0 - 1.0) * bound)
                .collect()
        };
        owned.push((
            format!("actor.{i}.weight"),
            vec![widths[i + 1], widths[i]],
            random(widths[i + 1] * widths[i]),
        ));
        owned.push((
            format!("actor.{i}.bias"),
            vec![widths[i + 1]],
            random(widths[i + 1]),
        ));
    }
    owned.push(("obs_norm.mean".into(), vec![231], vec![0.0; 231]));
    owned.push(("obs_norm.var".into(), vec![231], vec![1.0; 231]));
    let tensors: Vec<TensorData<'_>> = owned
        .iter()
        .map(|(name, shape, values)| TensorData {
            name,
            shape,
            values,
        })
        .collect();
    let bytes = safetensors_bytes(&tensors, &meta);
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_ne_bytes(b);
    }
    (words, bytes.len())
}

fn as_bytes(words: &[u64], len: usize) -> &[u8] {
    // SAFETY: u8 has no alignment or validity requirements; len <= 8 * words.len().
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) }
}

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
    let (words, len) = checkpoint_words();
    let bytes = as_bytes(&words, len);

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
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
