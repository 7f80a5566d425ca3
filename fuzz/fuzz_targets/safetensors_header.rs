//! Untrusted checkpoint bytes through everything the runtime does with them:
//! parse, metadata and tensor lookups, policy load, one forward pass.
//!
//! Two views of each input, so the fuzzer reaches the JSON grammar quickly:
//! the bytes as a whole file, and the bytes as `[header length: 2 bytes LE]
//! [header][data]` with the real 8-byte length prefix built here.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nq_runtime::policy::{Checkpoint, Policy, PolicyScratch};
use nq_runtime::ActionMask;

fn exercise(bytes: &[u8]) {
    let Ok(ck) = Checkpoint::parse(bytes) else {
        return;
    };
    for t in ck.tensors() {
        let _ = t.values().fold(0.0f32, |a, v| a + v);
        let _ = t.as_f32_in_place();
        let _ = ck.tensor(t.name().raw());
    }
    let mut buf = [0u8; 64];
    for (k, v) in ck.metadata_entries() {
        let _ = v.decode_into(&mut buf);
        let _ = ck.metadata(k.raw());
    }
    if let Ok(policy) = Policy::from_checkpoint(&ck) {
        let obs = [0.5f32; 231];
        let out = policy
            .forward(
                &obs[..policy.obs_dim()],
                ActionMask::from_bits(0xff),
                &mut PolicyScratch::new(),
            )
            .expect("a loaded policy accepts a finite observation of its size");
        assert!(out.probs().iter().all(|p| p.is_finite()));
        let _ = out.argmax();
    }
}

fuzz_target!(|data: &[u8]| {
    exercise(data);
    if let Some((len, rest)) = data.split_first_chunk::<2>() {
        let header_len = (u16::from_le_bytes(*len) as usize).min(rest.len());
        let mut file = Vec::with_capacity(8 + rest.len());
        file.extend_from_slice(&(header_len as u64).to_le_bytes());
        file.extend_from_slice(rest);
        exercise(&file);
    }
});
