//! Hostile inputs kept as files in fixtures/policy/regressions/. The fuzzer
//! (fuzz/fuzz_targets/safetensors_header.rs) found no crash in its runs; these
//! are the edge cases it and the review targeted (overflowing integers and
//! products, offsets past usize, lone surrogates, escapes cut short), each
//! pinned to the error it must produce. Any file added to the folder later
//! (e.g. a fuzzer artifact) is at least run through the reader.

use std::collections::BTreeMap;

use nq_runtime::policy::{Checkpoint, Policy, PolicyScratch};
use nq_runtime::ActionMask;

fn outcome(bytes: &[u8]) -> String {
    let ck = match Checkpoint::parse(bytes) {
        Ok(ck) => ck,
        Err(e) => return e.to_string(),
    };
    for t in ck.tensors() {
        let _ = t.values().count();
    }
    match Policy::from_checkpoint(&ck) {
        Ok(p) => {
            let obs = vec![0.0f32; p.obs_dim()];
            let out = p
                .forward(&obs, ActionMask::from_bits(0xff), &mut PolicyScratch::new())
                .unwrap();
            format!("loaded, argmax {}", out.argmax())
        }
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_regression_input_gives_its_error_without_panicking() {
    let expected: BTreeMap<&str, &str> = [
        (
            "header_len_u64_max.bin",
            "header length 18446744073709551615 runs past the end",
        ),
        (
            "shape_product_overflows.bin",
            "tensor `w` has shape [4294967296, 4294967296, 16]",
        ),
        (
            "offsets_past_usize.bin",
            "tensor `w` ends at data offset 18446744073709551615",
        ),
        ("integer_overflow.bin", "expected an integer below 2^64"),
        (
            "lone_surrogate_name.bin",
            "metadata key `format` is missing",
        ),
        ("unterminated_escape.bin", "expected 4 hex digits after \\u"),
        (
            "metadata_only_escaped.bin",
            "metadata key `format` has a JSON-escaped value",
        ),
        (
            "nested_metadata_object.bin",
            "expected a string value in __metadata__",
        ),
        ("zero_width_layer.bin", "metadata key `format` is missing"),
    ]
    .into_iter()
    .collect();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/policy/regressions");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let got = outcome(&std::fs::read(&path).unwrap());
        if let Some(want) = expected.get(name.as_str()) {
            assert!(got.contains(want), "{name}: got `{got}`, want `{want}`");
            seen += 1;
        }
    }
    assert_eq!(seen, expected.len(), "a pinned regression file is missing");
}
