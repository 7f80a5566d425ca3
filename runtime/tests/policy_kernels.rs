//! The policy's numeric kernels: grouped, single-row and byte-decoding
//! matvecs agree bit for bit, and the fast tanh stays accurate.

use nq_runtime::policy::mlp::*;

#[test]
fn grouped_and_single_row_kernels_agree_bitwise() {
    for cols in [1usize, 7, 8, 9, 31, 231] {
        for rows in [1usize, 3, 4, 5, 8, 9, 17] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
                .collect();
            let b: Vec<f32> = (0..rows).map(|i| i as f32 * 0.25).collect();
            let x: Vec<f32> = (0..cols)
                .map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0)
                .collect();
            let mut y = vec![0.0; rows];
            matvec(&w, &b, &x, &mut y);
            let wb: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
            let bb: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
            let mut y2 = vec![0.0; rows];
            let mut row_buf = vec![0.0; cols];
            matvec_le_bytes(&wb, &bb, &x, &mut y2, &mut row_buf);
            for r in 0..rows {
                let exact: f64 = (0..cols)
                    .map(|c| w[r * cols + c] as f64 * x[c] as f64)
                    .sum::<f64>()
                    + b[r] as f64;
                assert_eq!(y[r].to_bits(), y2[r].to_bits(), "rows {rows} cols {cols}");
                assert!((y[r] as f64 - exact).abs() <= 1e-5 * (1.0 + exact.abs()));
            }
        }
    }
}

#[test]
fn tanh_fast_is_within_a_few_ulps() {
    let mut worst = 0.0f64;
    let mut x = -12.0f32;
    while x < 12.0 {
        let exact = (x as f64).tanh();
        let rel = (tanh_fast(x) as f64 - exact).abs() / exact.abs().max(1e-30);
        worst = worst.max(rel);
        x += 1.0e-4;
    }
    for x in [
        0.0f32,
        1e-30,
        -1e-7,
        3.9e-4,
        4.1e-4,
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ] {
        let exact = (x as f64).tanh();
        assert!(
            (tanh_fast(x) as f64 - exact).abs() <= 4e-7 * exact.abs().max(1e-30),
            "{x}"
        );
    }
    assert!(worst < 4e-7, "worst relative error {worst:e}");
}

mod policy_common;

use nq_formats::checkpoint::Activation;
use nq_runtime::policy::{Checkpoint, FirstLayerPrefix, Policy, PolicyScratch};
use nq_runtime::ActionMask;
use policy_common::{file, metadata, metadata_pairs, random_tensors, Buffer, Rng};

/// FNV-1a over the bits of every logit of a production-sized policy
/// (231->256->256->6, both activations), weights in place and decoded; with
/// the weights in place, a forward pass continuing a prepared first-layer
/// prefix must give the same bits.
fn production_logits_digest() -> u64 {
    let mut digest = 0xcbf2_9ce4_8422_2325u64;
    let mut rng = Rng::new(5);
    let mut scratch = PolicyScratch::new();
    for (activation, seed) in [(Activation::Tanh, 11), (Activation::Relu, 12)] {
        let m = metadata(2, &[256, 256], activation);
        let bytes = file(&random_tensors(&m, seed), &metadata_pairs(&m));
        for shift in [0, 1] {
            let buf = Buffer::new(&bytes, shift);
            let ck = Checkpoint::parse(buf.bytes()).unwrap();
            let policy = Policy::from_checkpoint(&ck).unwrap();
            assert_eq!(policy.weights_in_place(), shift == 0);
            let mut prefix = Box::new(FirstLayerPrefix::new());
            for _ in 0..20 {
                let obs: Vec<f32> = (0..231).map(|_| (rng.next_f32() - 0.5) * 8.0).collect();
                let mask = ActionMask::from_bits(0xff);
                let out = policy.forward(&obs, mask, &mut scratch).unwrap();
                policy.prepare_prefix(&obs[..220], &mut prefix);
                let hits = prefix.hits();
                let prepared = policy
                    .forward_prepared(&obs, mask, &mut scratch, &mut prefix)
                    .unwrap();
                assert_eq!(prefix.hits() - hits, u64::from(shift == 0));
                assert_eq!(out, prepared);
                for logit in out.logits() {
                    for byte in logit.to_bits().to_le_bytes() {
                        digest = (digest ^ byte as u64).wrapping_mul(0x100_0000_01b3);
                    }
                }
            }
        }
    }
    digest
}

/// Pinned from the first (SSE2, 4-row) kernels: every build since (AVX,
/// 8-row groups, masked tails, transposed reductions, the AVX kernels
/// chosen at run time) must give the very same bits, on any CPU and
/// whatever `target-cpu` the build uses, on both kernel sets. (The only test
/// in this binary that switches kernels, so it knows which ones ran.)
#[test]
fn production_logits_are_bit_identical_on_every_build_and_kernel() {
    const PINNED: u64 = 5_481_852_817_154_407_442;
    let best = kernels();
    set_avx_disabled(true);
    let portable = if cfg!(target_arch = "x86_64") {
        Kernels::Sse2
    } else {
        Kernels::Plain
    };
    assert_eq!(kernels(), portable);
    assert_eq!(production_logits_digest(), PINNED, "{portable:?} kernels");
    set_avx_disabled(false);
    assert_eq!(kernels(), best);
    assert_eq!(production_logits_digest(), PINNED, "{best:?} kernels");
}
