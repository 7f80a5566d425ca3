//! Per-decision cost of the policy: normalise + MLP 231->256->256->6 + masked
//! softmax, plus the parts (matvec, tanh) that decide it.
//!
//! `CARGO_TARGET_DIR=/work/target-rt-policy cargo bench -p nq-runtime --bench policy`
//! (add `RUSTFLAGS="-C target-cpu=native"` for the native figures).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use nq_formats::checkpoint::{Activation, PolicyMetadata, MAX_LAYERS};
use nq_formats::{ActionSet, Instrument, SimConfig, OBS_LAYOUT_V1};
use nq_runtime::policy::{mlp, Checkpoint, Policy, PolicyScratch, Rng};
use nq_runtime::ActionMask;

/// A phase-2 231->256->256->6 checkpoint with random weights, in a buffer
/// whose data section is 4-byte aligned (so weights are used in place).
fn checkpoint_bytes(activation: Activation) -> Vec<u64> {
    let mut hidden = [0u32; MAX_LAYERS];
    hidden[..2].copy_from_slice(&[256, 256]);
    let meta = PolicyMetadata {
        format_version: 1,
        obs_layout_hash: OBS_LAYOUT_V1.hash(),
        obs_dim: 231,
        actions: ActionSet::Phase2,
        hidden,
        hidden_len: 2,
        activation,
        phase: 2,
        instrument: Instrument::Nq,
        bar_seconds: 60,
        timesteps: 0,
        update: 0,
        seed: 0,
        norm_clip: 5.0,
        norm_eps: 1e-8,
        sim: SimConfig::default(),
    };
    let mut rng = Rng::new(1);
    let mut entries = Vec::new();
    let mut pairs = Vec::new();
    meta.for_each_entry(|k, v| pairs.push(format!("\"{k}\":\"{v}\"")));
    entries.push(format!("\"__metadata__\":{{{}}}", pairs.join(",")));
    let mut data: Vec<u8> = Vec::new();
    let mut push =
        |name: String, shape: &[usize], scale: f32, offset: f32, entries: &mut Vec<String>| {
            let start = data.len();
            for _ in 0..shape.iter().product::<usize>() {
                let v = offset + (rng.next_f32() * 2.0 - 1.0) * scale;
                data.extend_from_slice(&v.to_le_bytes());
            }
            let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
            entries.push(format!(
                "\"{name}\":{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{start},{}]}}",
                dims.join(","),
                data.len()
            ));
        };
    let widths = [231usize, 256, 256, 6];
    for i in 0..3 {
        let bound = 1.0 / (widths[i] as f32).sqrt();
        push(
            format!("actor.{i}.weight"),
            &[widths[i + 1], widths[i]],
            bound,
            0.0,
            &mut entries,
        );
        push(
            format!("actor.{i}.bias"),
            &[widths[i + 1]],
            bound,
            0.0,
            &mut entries,
        );
    }
    push("obs_norm.mean".into(), &[231], 0.5, 0.0, &mut entries);
    push("obs_norm.var".into(), &[231], 0.5, 1.0, &mut entries);
    let mut header = format!("{{{}}}", entries.join(","));
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&data);
    // u64 storage keeps the buffer 8-byte aligned.
    let mut words = vec![0u64; bytes.len().div_ceil(8)];
    for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u64::from_le_bytes(b);
    }
    words.push(bytes.len() as u64);
    words
}

fn as_bytes(words: &[u64]) -> &[u8] {
    let len = *words.last().unwrap() as usize;
    // SAFETY: u8 has no alignment or validity requirements; len is in bounds.
    unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) }
}

fn bench_policy(c: &mut Criterion) {
    let mut rng = Rng::new(7);
    let obs: Vec<f32> = (0..231).map(|_| (rng.next_f32() - 0.5) * 6.0).collect();
    let mask = ActionMask::from_bits(0b11_0111);
    for activation in [Activation::Tanh, Activation::Relu] {
        let words = checkpoint_bytes(activation);
        let ck = Checkpoint::parse(as_bytes(&words)).unwrap();
        let policy = Policy::from_checkpoint(&ck).unwrap();
        assert!(policy.weights_in_place());
        let mut scratch = PolicyScratch::new();
        c.bench_function(
            &format!("decision_231_256_256_6_{}", activation.name()),
            |b| {
                b.iter(|| {
                    policy
                        .forward(black_box(&obs), black_box(mask), &mut scratch)
                        .unwrap()
                        .argmax()
                })
            },
        );
    }

    // The baseline the speed target is stated against: the same network as
    // plain loops (one accumulator per row, libm tanh), on the same machine.
    let words = checkpoint_bytes(Activation::Tanh);
    let ck = Checkpoint::parse(as_bytes(&words)).unwrap();
    let t = |name: &str| ck.tensor(name).unwrap().as_f32_in_place().unwrap();
    let layers: Vec<(&[f32], &[f32])> = (0..3)
        .map(|i| {
            (
                t(&format!("actor.{i}.weight")),
                t(&format!("actor.{i}.bias")),
            )
        })
        .collect();
    let (mean, var) = (t("obs_norm.mean"), t("obs_norm.var"));
    let mut h = vec![0.0f32; 256];
    let mut h2 = vec![0.0f32; 256];
    c.bench_function("decision_plain_loops_baseline_tanh", |b| {
        b.iter(|| {
            let obs = black_box(&obs);
            h.truncate(0);
            h.extend(
                obs.iter()
                    .zip(mean)
                    .zip(var)
                    .map(|((x, m), v)| ((x - m) / libm::sqrtf(v + 1e-8)).clamp(-5.0, 5.0)),
            );
            for (i, (w, bias)) in layers.iter().enumerate() {
                let cols = h.len();
                h2.truncate(0);
                h2.extend(w.chunks_exact(cols).zip(*bias).map(|(row, b)| {
                    let y = row.iter().zip(&h).map(|(a, x)| a * x).sum::<f32>() + b;
                    if i < 2 {
                        libm::tanhf(y)
                    } else {
                        y
                    }
                }));
                std::mem::swap(&mut h, &mut h2);
            }
            let max = h.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = h.iter().map(|l| libm::expf(l - max)).sum();
            black_box(sum)
        })
    });

    c.bench_function("parse_and_load_checkpoint", |b| {
        b.iter(|| {
            let ck = Checkpoint::parse(black_box(as_bytes(&words))).unwrap();
            Policy::from_checkpoint(&ck).unwrap().n_actions()
        })
    });

    let w: Vec<f32> = (0..256 * 256)
        .map(|i| ((i % 97) as f32 - 48.0) / 500.0)
        .collect();
    let bias = vec![0.01f32; 256];
    let x: Vec<f32> = (0..256).map(|i| ((i % 13) as f32 - 6.0) / 6.0).collect();
    let mut y = vec![0.0f32; 256];
    c.bench_function("matvec_256x256", |b| {
        b.iter(|| mlp::matvec(black_box(&w), &bias, black_box(&x), &mut y))
    });

    // Small enough for L1: the kernel's compute rate without cache traffic.
    let (w_small, x_small, b_small) = (&w[..64 * 64], &x[..64], &bias[..64]);
    let mut y_small = vec![0.0f32; 64];
    c.bench_function("matvec_64x64_in_l1", |b| {
        b.iter(|| {
            mlp::matvec(
                black_box(w_small),
                b_small,
                black_box(x_small),
                &mut y_small,
            )
        })
    });

    let mut v: Vec<f32> = (0..512).map(|i| (i as f32 - 256.0) / 64.0).collect();
    c.bench_function("tanh_512_rational", |b| {
        b.iter(|| mlp::tanh_in_place(black_box(&mut v)))
    });
    let v2: Vec<f32> = (0..512).map(|i| (i as f32 - 256.0) / 64.0).collect();
    let mut out = vec![0.0f32; 512];
    c.bench_function("tanh_512_libm", |b| {
        b.iter(|| {
            for (o, &x) in out.iter_mut().zip(black_box(&v2)) {
                *o = libm::tanhf(x);
            }
        })
    });
}

criterion_group!(benches, bench_policy);
criterion_main!(benches);
