//! The first layer done in two sittings (a prepared prefix, then the rest)
//! gives the logits of one sitting, bit for bit, and a prefix prepared from
//! other inputs or other weights is never used.

mod policy_common;

use nq_formats::checkpoint::Activation;
use nq_runtime::policy::mlp::{matvec, matvec_from, prefix_lane_sums, LaneSums, LANES};
use nq_runtime::policy::{Checkpoint, FirstLayerPrefix, Policy, PolicyScratch};
use nq_runtime::ActionMask;
use policy_common::{file, metadata, metadata_pairs, random_tensors, Buffer, Rng};
use proptest::prelude::*;

/// Values that stress the kernels' lanes: signed zeros, tiny and large
/// magnitudes, as well as ordinary ones.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -8.0f32..8.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        1 => prop_oneof![Just(1e-30f32), Just(-3e20f32), Just(7e15f32)],
    ]
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn two_sittings_equal_one(
        (rows, cols, w, b, x, split) in (1usize..20, 1usize..80).prop_flat_map(|(rows, cols)| (
            Just(rows),
            Just(cols),
            proptest::collection::vec(value(), rows * cols),
            proptest::collection::vec(value(), rows),
            proptest::collection::vec(value(), cols),
            0..=cols,
        ))
    ) {
        let mut whole = vec![0.0f32; rows];
        matvec(&w, &b, &x, &mut whole);
        let mut lanes: Vec<LaneSums> = vec![[0.0; LANES]; rows];
        let covered = prefix_lane_sums(&w, cols, &x[..split], &mut lanes);
        prop_assert_eq!(covered, split - split % LANES);
        let mut resumed = vec![0.0f32; rows];
        matvec_from(&w, &b, &x, &mut resumed, covered, &lanes);
        prop_assert_eq!(bits(&resumed), bits(&whole));
    }
}

/// A production-sized phase-2 policy (231->256->256->6) in aligned storage.
fn production_file(seed: u64) -> Vec<u8> {
    let m = metadata(2, &[256, 256], Activation::Tanh);
    file(&random_tensors(&m, seed), &metadata_pairs(&m))
}

fn observation(rng: &mut Rng) -> Vec<f32> {
    (0..231).map(|_| (rng.next_f32() - 0.5) * 8.0).collect()
}

#[test]
fn a_prepared_prefix_gives_the_same_logits_and_is_used_only_when_it_matches() {
    let bytes = production_file(21);
    let buf = Buffer::new(&bytes, 0);
    let ck = Checkpoint::parse(buf.bytes()).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    assert!(policy.weights_in_place());
    let mask = ActionMask::from_bits(0xff);
    let mut rng = Rng::new(3);
    let mut scratch = PolicyScratch::new();
    let mut prefix = Box::new(FirstLayerPrefix::new());

    for round in 0..30 {
        let obs = observation(&mut rng);
        let plain = policy.forward(&obs, mask, &mut scratch).unwrap();
        // Prepared from this observation's first 220 values: 216 columns.
        policy.prepare_prefix(&obs[..220], &mut prefix);
        assert_eq!(prefix.len(), 216);
        let hits = prefix.hits();
        let prepared = policy
            .forward_prepared(&obs, mask, &mut scratch, &mut prefix)
            .unwrap();
        assert_eq!(
            bits(prepared.logits()),
            bits(plain.logits()),
            "round {round}"
        );
        assert_eq!(prepared.probs(), plain.probs());
        assert_eq!(prefix.hits(), hits + 1, "a matching prefix is used");

        // One value inside the prefix differs: not used, still exact. (The
        // key is the normalised value, so the change must survive the
        // normaliser's rounding and clip: both values stay well inside it.)
        let mut other = obs.clone();
        let i = (round * 7) % 216;
        other[i] = if obs[i].abs() > 1.0 {
            0.0
        } else {
            obs[i] + 0.5
        };
        let expected = policy.forward(&other, mask, &mut scratch).unwrap();
        let got = policy
            .forward_prepared(&other, mask, &mut scratch, &mut prefix)
            .unwrap();
        assert_eq!(bits(got.logits()), bits(expected.logits()));
        assert_eq!(prefix.hits(), hits + 1, "a stale prefix is not used");

        // Values past the prefix may change freely: still used, still exact.
        let mut later = obs.clone();
        for v in &mut later[216..] {
            *v = -*v;
        }
        let expected = policy.forward(&later, mask, &mut scratch).unwrap();
        let got = policy
            .forward_prepared(&later, mask, &mut scratch, &mut prefix)
            .unwrap();
        assert_eq!(bits(got.logits()), bits(expected.logits()));
        assert_eq!(prefix.hits(), hits + 2);
    }
}

#[test]
fn a_prefix_prepared_by_another_policy_is_not_used() {
    let (bytes_a, bytes_b) = (production_file(31), production_file(32));
    let (buf_a, buf_b) = (Buffer::new(&bytes_a, 0), Buffer::new(&bytes_b, 0));
    let (ck_a, ck_b) = (
        Checkpoint::parse(buf_a.bytes()).unwrap(),
        Checkpoint::parse(buf_b.bytes()).unwrap(),
    );
    let a = Policy::from_checkpoint(&ck_a).unwrap();
    let b = Policy::from_checkpoint(&ck_b).unwrap();
    let mask = ActionMask::from_bits(0xff);
    let mut scratch = PolicyScratch::new();
    let mut prefix = Box::new(FirstLayerPrefix::new());
    let obs = observation(&mut Rng::new(9));
    a.prepare_prefix(&obs, &mut prefix);
    let expected = b.forward(&obs, mask, &mut scratch).unwrap();
    let got = b
        .forward_prepared(&obs, mask, &mut scratch, &mut prefix)
        .unwrap();
    assert_eq!(bits(got.logits()), bits(expected.logits()));
    assert_eq!(prefix.hits(), 0);
}

#[test]
fn unaligned_weights_prepare_nothing_and_stay_exact() {
    let bytes = production_file(41);
    let buf = Buffer::new(&bytes, 1);
    let ck = Checkpoint::parse(buf.bytes()).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    assert!(!policy.weights_in_place());
    let mut prefix = Box::new(FirstLayerPrefix::new());
    let obs = observation(&mut Rng::new(4));
    policy.prepare_prefix(&obs, &mut prefix);
    assert!(prefix.is_empty());
    let mask = ActionMask::from_bits(0xff);
    let mut scratch = PolicyScratch::new();
    let expected = policy.forward(&obs, mask, &mut scratch).unwrap();
    let got = policy
        .forward_prepared(&obs, mask, &mut scratch, &mut prefix)
        .unwrap();
    assert_eq!(bits(got.logits()), bits(expected.logits()));
    assert_eq!(prefix.hits(), 0);
}
