//! Per-decision cost of the policy: normalise + MLP 231->256->256->6 + masked
//! softmax (on the CPU's best kernels, on SSE2, and with the first layer's
//! 208 leading columns prepared beforehand), plus the parts (matvec, tanh)
//! that decide it.
//!
//! `taskset -c 1 cargo bench -p nq-runtime --bench policy`
//! (add `RUSTFLAGS="-C target-cpu=native"` for the native figures).
//!
//! Medians on one core of the 2-core AMD EPYC (Zen 4) dev box, idle
//! (2026-11-26, session 3), portable build / `target-cpu=native`:
//! `decision_231_256_256_6_tanh` 5.72 / 5.42 us, `_on_sse2` 10.6 / 8.3 us,
//! `_prepared` 4.3-4.6 / 3.52 us, `prepare_prefix_208_of_231` 2.49 / 2.43
//! us. `matvec_256x256` 2.65 us and `matvec_231x256_first_layer` 2.34 us:
//! about what the L2 cache delivers (a plain read of 256 KB from L2 takes
//! 2.2 us here, 34 B/cycle), so an unprepared decision costs at least the
//! 4.3 us it takes to read its 490 KB of f32 weights from L2; prepared, the
//! first layer reads only its last 23 columns (`matvec_231x256_from_208`,
//! 0.46 us with them in L1).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use nq_formats::checkpoint::Activation;
use nq_runtime::policy::{mlp, Checkpoint, FirstLayerPrefix, Policy, PolicyScratch, Rng};
use nq_runtime::ActionMask;

fn bench_policy(c: &mut Criterion) {
    let mut rng = Rng::new(7);
    let obs: Vec<f32> = (0..231).map(|_| (rng.next_f32() - 0.5) * 6.0).collect();
    let mask = ActionMask::from_bits(0b11_0111);
    for activation in [Activation::Tanh, Activation::Relu] {
        let words = common::random_checkpoint(activation);
        let ck = Checkpoint::parse(words.bytes()).unwrap();
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
    // The same on the SSE2 kernels, which CPUs without AVX run.
    {
        let words = common::random_checkpoint(Activation::Tanh);
        let ck = Checkpoint::parse(words.bytes()).unwrap();
        let policy = Policy::from_checkpoint(&ck).unwrap();
        let mut scratch = PolicyScratch::new();
        mlp::set_avx_disabled(true);
        c.bench_function("decision_231_256_256_6_tanh_on_sse2", |b| {
            b.iter(|| {
                policy
                    .forward(black_box(&obs), black_box(mask), &mut scratch)
                    .unwrap()
                    .argmax()
            })
        });
        mlp::set_avx_disabled(false);
    }

    // The same decision with the first layer's 208 leading columns prepared
    // beforehand (as the engine does between bars): only the forward pass
    // is timed; the preparation is measured on its own below.
    let words = common::random_checkpoint(Activation::Tanh);
    let ck = Checkpoint::parse(words.bytes()).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    let mut scratch = PolicyScratch::new();
    let mut prefix = Box::new(FirstLayerPrefix::new());
    let known = &obs[..obs.len() - 23];
    c.bench_function("decision_231_256_256_6_tanh_prepared", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                policy.prepare_prefix(known, &mut prefix);
                let start = Instant::now();
                black_box(
                    policy
                        .forward_prepared(black_box(&obs), mask, &mut scratch, &mut prefix)
                        .unwrap()
                        .argmax(),
                );
                timed += start.elapsed();
            }
            timed
        });
        assert!(prefix.hits() > 0, "the prepared prefix was never used");
    });
    c.bench_function("prepare_prefix_208_of_231", |b| {
        b.iter(|| policy.prepare_prefix(black_box(known), &mut prefix))
    });

    // The baseline the speed target is stated against: the same network as
    // plain loops (one accumulator per row, libm tanh), on the same machine.
    let words = common::random_checkpoint(Activation::Tanh);
    let ck = Checkpoint::parse(words.bytes()).unwrap();
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
            let ck = Checkpoint::parse(black_box(words.bytes())).unwrap();
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

    // The first layer of the checkpoint above, in place: 231-float rows start
    // at every 4-byte offset, so half the loads straddle two cache lines.
    let (w0, b0) = layers[0];
    let x0: Vec<f32> = x.iter().cycle().take(231).copied().collect();
    c.bench_function("matvec_231x256_first_layer", |b| {
        b.iter(|| mlp::matvec(black_box(w0), b0, black_box(&x0), &mut y))
    });

    // Its last 23 columns only, the first 208 continued from lane sums.
    let mut lanes = vec![[0.0f32; mlp::LANES]; 256];
    let from = mlp::prefix_lane_sums(w0, 231, &x0[..208], &mut lanes);
    c.bench_function("matvec_231x256_from_208", |b| {
        b.iter(|| mlp::matvec_from(black_box(w0), b0, black_box(&x0), &mut y, from, &lanes))
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
