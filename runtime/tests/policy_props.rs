//! Arbitrary bytes and mutated valid checkpoints never panic the reader.

mod policy_common;

use nq_formats::checkpoint::Activation;
use nq_runtime::policy::{Checkpoint, Policy, PolicyScratch};
use nq_runtime::ActionMask;
use policy_common::*;
use proptest::prelude::*;

/// Everything the runtime does with untrusted bytes.
fn exercise(bytes: &[u8]) {
    let Ok(ck) = Checkpoint::parse(bytes) else {
        return;
    };
    for t in ck.tensors() {
        let _ = t.values().count();
        let _ = t.as_f32_in_place();
    }
    let _ = ck.metadata_entries().count();
    if let Ok(policy) = Policy::from_checkpoint(&ck) {
        let obs = vec![0.25f32; policy.obs_dim()];
        let out = policy
            .forward(&obs, ActionMask::from_bits(0xff), &mut PolicyScratch::new())
            .unwrap();
        assert!(out.probs().iter().all(|p| p.is_finite()));
    }
}

fn base() -> Vec<u8> {
    valid_file(1, &[3], Activation::Relu, 4)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_json_headers_never_panic(
        header in "[{}\\[\\]\",: 0-9a-z_.\\\\]{0,200}",
        data in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        exercise(&file_from(&header, &data));
    }

    #[test]
    fn mutated_valid_files_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = base();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        exercise(&bytes);
    }

    #[test]
    fn mutated_headers_never_panic(
        at in any::<prop::sample::Index>(),
        insert in "[{}\\[\\]\",: 0-9\\\\u]{1,4}",
    ) {
        let m = metadata(1, &[3], Activation::Tanh);
        let (header, data) = header_and_data(&random_tensors(&m, 4), &metadata_pairs(&m));
        let mut i = at.index(header.len());
        while !header.is_char_boundary(i) { i -= 1; }
        let mutated = format!("{}{}{}", &header[..i], insert, &header[i..]);
        exercise(&file_from(&mutated, &data));
    }
}
