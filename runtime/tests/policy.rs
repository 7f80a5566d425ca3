//! The policy reads files written by Python's `safetensors`, matches an f64
//! reference within 1e-6 relative, and refuses every malformed checkpoint
//! with its own error.

mod policy_common;

use nq_formats::checkpoint::{Activation, MetadataError};
use nq_formats::{Action, ActionSet, Instrument, OBS_LAYOUT_V1};
use nq_runtime::policy::{Checkpoint, Policy, PolicyError, PolicyScratch, Rng, SafetensorsError};
use nq_runtime::ActionMask;
use policy_common::*;

/// `|got - want| <= 1e-6 * max(|want|, 1)`: relative for logits of ordinary
/// size, absolute 1e-6 for logits near zero (where relative error is not
/// meaningful for a sum of terms of order one).
fn close(got: f32, want: f64) -> bool {
    (got as f64 - want).abs() <= 1e-6 * want.abs().max(1.0)
}

fn parse_csv(s: &str) -> Vec<f64> {
    s.split(',').map(|v| v.parse().unwrap()).collect()
}

struct Case {
    checkpoint: String,
    mask: u8,
    obs: Vec<f32>,
    logits: Vec<f64>,
    probs: Vec<f64>,
}

fn reference_cases() -> Vec<Case> {
    let text = String::from_utf8(fixture("reference.txt")).unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split(';').collect();
            Case {
                checkpoint: f[0].to_string(),
                mask: f[1].parse().unwrap(),
                obs: parse_csv(f[2]).into_iter().map(|v| v as f32).collect(),
                logits: parse_csv(f[3]),
                probs: parse_csv(f[4]),
            }
        })
        .collect()
}

#[test]
fn python_fixture_metadata_reads_as_typed_metadata() {
    let buf = Buffer::new(&fixture("policy_tanh_p1.safetensors"), 0);
    let ck = Checkpoint::parse(buf.bytes()).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    let m = policy.metadata();
    assert_eq!(m.obs_layout_hash, OBS_LAYOUT_V1.hash());
    assert_eq!(m.obs_dim, 225);
    assert_eq!(m.actions, ActionSet::Phase1);
    assert_eq!(m.hidden(), &[16, 16]);
    assert_eq!(m.activation, Activation::Tanh);
    assert_eq!(m.instrument, Instrument::Nq);
    assert_eq!(m.norm_clip, 5.0);
    assert_eq!(m.seed, 11);
    assert_eq!(m.sim.session.to_string(), "09:30-16:00");
    assert!(policy.weights_in_place());
    // The critic and optimizer state are in the file but not used.
    assert!(ck.tensor("critic.1.weight").is_some());
    assert!(ck.tensor("optim.actor.0.weight.exp_avg").is_some());

    let buf = Buffer::new(&fixture("policy_relu_p2.safetensors"), 0);
    let ck = Checkpoint::parse(buf.bytes()).unwrap();
    let m = *Policy::from_checkpoint(&ck).unwrap().metadata();
    assert_eq!(
        (m.obs_dim, m.actions, m.hidden(), m.activation),
        (231, ActionSet::Phase2, &[8u32][..], Activation::Relu)
    );
}

#[test]
fn python_fixture_logits_match_the_numpy_f64_reference() {
    let mut scratch = PolicyScratch::new();
    let mut checked = 0;
    for name in ["policy_tanh_p1", "policy_relu_p2"] {
        let bytes = fixture(&format!("{name}.safetensors"));
        // Shift 0 is used in place, shift 1 through the decoding fallback.
        let aligned = Buffer::new(&bytes, 0);
        let unaligned = Buffer::new(&bytes, 1);
        let ck_a = Checkpoint::parse(aligned.bytes()).unwrap();
        let ck_u = Checkpoint::parse(unaligned.bytes()).unwrap();
        let p_a = Policy::from_checkpoint(&ck_a).unwrap();
        let p_u = Policy::from_checkpoint(&ck_u).unwrap();
        assert!(p_a.weights_in_place() && !p_u.weights_in_place());
        for case in reference_cases().iter().filter(|c| c.checkpoint == name) {
            let mask = ActionMask::from_bits(case.mask);
            let out = p_a.forward(&case.obs, mask, &mut scratch).unwrap();
            let out_u = p_u.forward(&case.obs, mask, &mut scratch).unwrap();
            assert_eq!(
                out, out_u,
                "{name}: the fallback must give identical results"
            );
            assert_eq!(out.logits().len(), case.logits.len());
            for (i, (&got, &want)) in out.logits().iter().zip(&case.logits).enumerate() {
                assert!(close(got, want), "{name} logit {i}: {got} vs {want}");
            }
            for (i, (&got, &want)) in out.probs().iter().zip(&case.probs).enumerate() {
                if want == 0.0 {
                    assert_eq!(
                        got, 0.0,
                        "{name}: masked action {i} must have probability 0"
                    );
                } else {
                    assert!(
                        (got as f64 - want).abs() <= 1e-6,
                        "{name} prob {i}: {got} vs {want}"
                    );
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

/// f64 forward pass straight from the checkpoint's tensors.
fn reference_logits(ck: &Checkpoint<'_>, obs: &[f32]) -> Vec<f64> {
    let policy = Policy::from_checkpoint(ck).unwrap();
    let m = policy.metadata();
    let values =
        |name: &str| -> Vec<f64> { ck.tensor(name).unwrap().values().map(f64::from).collect() };
    let (mean, var) = (values("obs_norm.mean"), values("obs_norm.var"));
    let clip = m.norm_clip as f64;
    let mut h: Vec<f64> = obs
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            ((x as f64 - mean[i]) / (var[i] + m.norm_eps as f64).sqrt()).clamp(-clip, clip)
        })
        .collect();
    let n_layers = m.hidden().len() + 1;
    for l in 0..n_layers {
        let w = values(&format!("actor.{l}.weight"));
        let b = values(&format!("actor.{l}.bias"));
        let cols = h.len();
        h = (0..b.len())
            .map(|r| {
                let y = b[r] + (0..cols).map(|c| w[r * cols + c] * h[c]).sum::<f64>();
                match (l + 1 < n_layers, m.activation) {
                    (false, _) => y,
                    (true, Activation::Tanh) => y.tanh(),
                    (true, Activation::Relu) => y.max(0.0),
                }
            })
            .collect();
    }
    h
}

#[test]
fn production_sized_policy_matches_an_f64_reference() {
    let mut scratch = PolicyScratch::new();
    let mut rng = Rng::new(99);
    let mut worst = 0.0f64;
    for (activation, seed) in [(Activation::Tanh, 1), (Activation::Relu, 2)] {
        let bytes = valid_file(2, &[256, 256], activation, seed);
        let buf = Buffer::new(&bytes, 0);
        let ck = Checkpoint::parse(buf.bytes()).unwrap();
        let policy = Policy::from_checkpoint(&ck).unwrap();
        for _ in 0..20 {
            let obs: Vec<f32> = (0..231).map(|_| (rng.next_f32() - 0.5) * 8.0).collect();
            let want = reference_logits(&ck, &obs);
            let out = policy
                .forward(&obs, ActionMask::from_bits(0xff), &mut scratch)
                .unwrap();
            for (&g, &w) in out.logits().iter().zip(&want) {
                assert!(close(g, w), "{activation:?}: {g} vs {w}");
                worst = worst.max((g as f64 - w).abs() / w.abs().max(1.0));
            }
        }
    }
    eprintln!("worst relative logit error {worst:e}");
}

fn fixture_policy_output(mask: ActionMask) -> nq_runtime::policy::PolicyOutput {
    let buf = Buffer::new(&fixture("policy_relu_p2.safetensors"), 0);
    let ck = Checkpoint::parse(buf.bytes()).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    let obs = &reference_cases()[7].obs;
    policy
        .forward(obs, mask, &mut PolicyScratch::new())
        .unwrap()
}

#[test]
fn masked_softmax_argmax_and_sampling_respect_the_mask() {
    for bits in 0u8..64 {
        let mask = ActionMask::from_bits(bits);
        let out = fixture_policy_output(mask);
        let sum: f32 = out.probs().iter().sum();
        assert!((sum - 1.0).abs() < 1e-6);
        for a in Action::ALL {
            let p = out.probs()[a.code() as usize];
            assert_eq!(p == 0.0, !mask.allows(a), "{a} mask {bits:#b} p {p}");
        }
        let best = out.argmax();
        assert!(mask.allows(best));
        for a in Action::ALL.into_iter().filter(|&a| mask.allows(a)) {
            assert!(out.logits()[a.code() as usize] <= out.logits()[best.code() as usize]);
        }
        let mut rng = Rng::new(bits as u64);
        let mut counts = [0usize; 6];
        let n = 20_000;
        for _ in 0..n {
            counts[out.sample(&mut rng).code() as usize] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let p = out.probs()[i] as f64;
            let sd = (p * (1.0 - p) / n as f64).sqrt();
            assert!(
                (c as f64 / n as f64 - p).abs() <= 5.0 * sd + 1e-9,
                "action {i}: {c}/{n} vs {p}"
            );
        }
    }
}

#[test]
fn argmax_ties_go_to_the_lowest_code() {
    // A head with all-zero weights and biases gives equal logits.
    let m = metadata(2, &[4], Activation::Relu);
    let mut tensors = random_tensors(&m, 5);
    for t in tensors
        .iter_mut()
        .filter(|t| t.name.starts_with("actor.1."))
    {
        t.values.iter_mut().for_each(|v| *v = 0.0);
    }
    let buf = Buffer::new(&file(&tensors, &metadata_pairs(&m)), 0);
    let ck = Checkpoint::parse(buf.bytes()).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    let obs = vec![0.5f32; 231];
    let mut scratch = PolicyScratch::new();
    let all = ActionMask::from_bits(0xff);
    assert_eq!(
        policy.forward(&obs, all, &mut scratch).unwrap().argmax(),
        Action::Hold
    );
    let no_hold_tie = ActionMask::HOLD_ONLY
        .with(Action::SlToBe)
        .with(Action::TrailLoosen);
    // HOLD is allowed too and ties with them: still HOLD.
    assert_eq!(
        policy
            .forward(&obs, no_hold_tie, &mut scratch)
            .unwrap()
            .argmax(),
        Action::Hold
    );
    let out = policy.forward(&obs, no_hold_tie, &mut scratch).unwrap();
    assert!(out
        .probs()
        .iter()
        .enumerate()
        .all(|(i, &p)| if [0, 3, 5].contains(&i) {
            (p - 1.0 / 3.0).abs() < 1e-6
        } else {
            p == 0.0
        }));
}

#[test]
fn forward_refuses_bad_observations() {
    let buf = Buffer::new(&fixture("policy_tanh_p1.safetensors"), 0);
    let ck = Checkpoint::parse(buf.bytes()).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    let mut scratch = PolicyScratch::new();
    let mask = ActionMask::HOLD_ONLY;
    assert_eq!(
        policy.forward(&[0.0; 224], mask, &mut scratch).unwrap_err(),
        PolicyError::ObservationLength {
            expected: 225,
            found: 224
        }
    );
    let mut obs = [0.0f32; 225];
    obs[17] = f32::NAN;
    assert_eq!(
        policy.forward(&obs, mask, &mut scratch).unwrap_err(),
        PolicyError::NanObservation { index: 17 }
    );
    // Infinities are clipped like any large value.
    obs[17] = f32::INFINITY;
    let out = policy
        .forward(&obs, ActionMask::from_bits(0xff), &mut scratch)
        .unwrap();
    assert!(out.logits().iter().all(|l| l.is_finite()));
}

// ----------------------------------------------------------------- bad input

fn small_meta() -> nq_formats::checkpoint::PolicyMetadata {
    metadata(1, &[4, 4], Activation::Tanh)
}

/// Loads `bytes` as a policy and returns the error.
fn load_err(bytes: &[u8]) -> PolicyError {
    let buf = Buffer::new(bytes, 0);
    match Checkpoint::parse(buf.bytes()) {
        Err(e) => PolicyError::Checkpoint(e),
        Ok(ck) => Policy::from_checkpoint(&ck).expect_err("must be refused"),
    }
}

fn with_tensors(edit: impl FnOnce(&mut Vec<TensorSpec>)) -> Vec<u8> {
    let m = small_meta();
    let mut t = random_tensors(&m, 9);
    edit(&mut t);
    file(&t, &metadata_pairs(&m))
}

fn with_metadata(edit: impl FnOnce(&mut Vec<(String, String)>)) -> Vec<u8> {
    let m = small_meta();
    let mut pairs = metadata_pairs(&m);
    edit(&mut pairs);
    file(&random_tensors(&m, 9), &pairs)
}

fn with_header(edit: impl FnOnce(String) -> String) -> Vec<u8> {
    let m = small_meta();
    let (h, d) = header_and_data(&random_tensors(&m, 9), &metadata_pairs(&m));
    file_from(&edit(h), &d)
}

fn set(pairs: &mut [(String, String)], key: &str, value: &str) {
    pairs.iter_mut().find(|(k, _)| k == key).unwrap().1 = value.to_string();
}

#[test]
fn the_valid_base_file_loads() {
    let buf = Buffer::new(&with_tensors(|_| {}), 0);
    Policy::from_checkpoint(&Checkpoint::parse(buf.bytes()).unwrap()).unwrap();
}

#[test]
fn bad_truncated_before_the_header_length() {
    let e = load_err(&with_tensors(|_| {})[..5]);
    assert_eq!(
        e,
        PolicyError::Checkpoint(SafetensorsError::Truncated { len: 5 })
    );
    assert!(e.to_string().contains("truncated"), "{e}");
}

#[test]
fn bad_truncated_inside_the_data() {
    let full = with_tensors(|_| {});
    let e = load_err(&full[..full.len() - 3]);
    let PolicyError::Checkpoint(SafetensorsError::OffsetsPastEnd { tensor, .. }) = e else {
        panic!("{e:?}")
    };
    assert_eq!(tensor.as_str(), "obs_norm.var");
    assert!(
        e.to_string().contains("`obs_norm.var` ends at data offset"),
        "{e}"
    );
}

#[test]
fn bad_header_length_past_the_end() {
    let mut bytes = with_tensors(|_| {});
    bytes[..8].copy_from_slice(&(u64::MAX - 3).to_le_bytes());
    let e = load_err(&bytes);
    assert!(
        matches!(e, PolicyError::Checkpoint(SafetensorsError::HeaderLengthPastEnd { header_len, .. }) if header_len == u64::MAX - 3),
        "{e:?}"
    );
}

#[test]
fn bad_json() {
    let e = load_err(&with_header(|h| {
        h.replacen("\"shape\":[", "\"shape\":{", 1)
    }));
    assert!(
        matches!(e, PolicyError::Checkpoint(SafetensorsError::BadJson { .. })),
        "{e:?}"
    );
    assert!(e.to_string().contains("not valid JSON"), "{e}");
}

#[test]
fn bad_header_not_utf8() {
    let mut bytes = with_tensors(|_| {});
    bytes[12] = 0xff;
    assert!(matches!(
        load_err(&bytes),
        PolicyError::Checkpoint(SafetensorsError::HeaderNotUtf8 { offset: 4 })
    ));
}

#[test]
fn bad_unknown_dtype() {
    let e = load_err(&with_header(|h| {
        let at = h.find("\"actor.1.bias\"").unwrap();
        let (a, b) = h.split_at(at);
        format!("{a}{}", b.replacen("\"F32\"", "\"F16\"", 1))
    }));
    let PolicyError::Checkpoint(SafetensorsError::UnsupportedDtype { tensor, dtype }) = e else {
        panic!("{e:?}")
    };
    assert_eq!((tensor.as_str(), dtype.as_str()), ("actor.1.bias", "F16"));
    assert_eq!(
        e.to_string(),
        "checkpoint: tensor `actor.1.bias` has dtype F16; only F32 is supported"
    );
}

#[test]
fn bad_shape_offset_mismatch() {
    let e = load_err(&with_header(|h| {
        h.replacen("\"shape\":[4,225]", "\"shape\":[4,224]", 1)
    }));
    let PolicyError::Checkpoint(SafetensorsError::ShapeOffsetMismatch { tensor, span, .. }) = e
    else {
        panic!("{e:?}")
    };
    assert_eq!((tensor.as_str(), span), ("actor.0.weight", 4 * 225 * 4));
    assert!(
        e.to_string()
            .contains("`actor.0.weight` has shape [4, 224]"),
        "{e}"
    );
}

#[test]
fn bad_overlapping_tensors() {
    // Point actor.0.bias at the first bytes of actor.0.weight.
    let e = load_err(&with_header(|h| {
        h.replacen("\"data_offsets\":[3600,3616]", "\"data_offsets\":[8,24]", 1)
    }));
    let PolicyError::Checkpoint(SafetensorsError::OverlappingTensors { first, second }) = e else {
        panic!("{e:?}")
    };
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("actor.0.weight", "actor.0.bias")
    );
}

#[test]
fn bad_missing_tensor() {
    let e = load_err(&with_tensors(|t| t.retain(|t| t.name != "actor.1.bias")));
    assert_eq!(
        e.to_string(),
        "checkpoint: tensor `actor.1.bias` is missing"
    );
    assert!(matches!(
        e,
        PolicyError::Checkpoint(SafetensorsError::MissingTensor { .. })
    ));
    let e = load_err(&with_tensors(|t| t.retain(|t| t.name != "obs_norm.var")));
    assert_eq!(
        e.to_string(),
        "checkpoint: tensor `obs_norm.var` is missing"
    );
}

#[test]
fn bad_nan_weights() {
    let e = load_err(&with_tensors(|t| t[2].values[5] = f32::NAN));
    assert_eq!(
        e.to_string(),
        "checkpoint: tensor `actor.1.weight` holds a NaN or infinite value at element 5"
    );
    let e = load_err(&with_tensors(|t| {
        t.last_mut().unwrap().values[0] = f32::INFINITY
    }));
    assert!(
        matches!(e, PolicyError::NonFiniteWeight { index: 0, .. }),
        "{e:?}"
    );
}

#[test]
fn bad_layout_hash() {
    let e = load_err(&with_metadata(|m| {
        set(m, "obs_layout_hash", "0123456789abcdef")
    }));
    assert_eq!(
        e,
        PolicyError::LayoutHashMismatch {
            checkpoint: 0x0123456789abcdef,
            runtime: OBS_LAYOUT_V1.hash()
        }
    );
    assert!(
        e.to_string().contains("0123456789abcdef") && e.to_string().contains("3bb9cfa2cf4f4097"),
        "{e}"
    );
}

#[test]
fn bad_obs_dim_in_metadata() {
    let e = load_err(&with_metadata(|m| set(m, "obs_dim", "231")));
    assert_eq!(
        e,
        PolicyError::ObsDimMismatch {
            checkpoint: 231,
            runtime: 225,
            phase: 1
        }
    );
}

#[test]
fn bad_obs_dim_in_tensors() {
    let e = load_err(&with_tensors(|t| {
        t[0] = tensor("actor.0.weight", &[4, 224], vec![0.1; 4 * 224]);
    }));
    assert!(
        matches!(e, PolicyError::TensorShapeMismatch { .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "checkpoint: tensor `actor.0.weight` has shape [4, 224], expected [4, 225]"
    );
    let e = load_err(&with_tensors(|t| {
        let n = t.len();
        t[n - 2] = tensor("obs_norm.mean", &[224], vec![0.0; 224]);
    }));
    assert_eq!(
        e.to_string(),
        "checkpoint: tensor `obs_norm.mean` has shape [224], expected [225]"
    );
}

#[test]
fn bad_shape_mismatch_between_layers() {
    let e = load_err(&with_tensors(|t| {
        t[2] = tensor("actor.1.weight", &[4, 3], vec![0.1; 12]);
    }));
    assert!(
        matches!(
            e,
            PolicyError::LayerShapeMismatch {
                previous_out: 4,
                input: 3,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("`actor.1.weight` takes 3 inputs but the previous layer outputs 4"),
        "{e}"
    );
}

#[test]
fn bad_hidden_width_against_metadata() {
    let e = load_err(&with_metadata(|m| set(m, "hidden", "4,5")));
    assert!(
        matches!(
            e,
            PolicyError::HiddenMismatch {
                metadata: 5,
                found: 4,
                ..
            }
        ),
        "{e:?}"
    );
    let e = load_err(&with_metadata(|m| set(m, "hidden", "4")));
    assert!(
        matches!(
            e,
            PolicyError::ActionCountMismatch {
                expected: 3,
                found: 4,
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn bad_extra_layer() {
    let e = load_err(&with_tensors(|t| {
        t.push(tensor("actor.3.weight", &[3, 3], vec![0.0; 9]));
        t.push(tensor("actor.3.bias", &[3], vec![0.0; 3]));
    }));
    assert_eq!(e.to_string(), "checkpoint: tensor `actor.3.weight` is an extra layer: metadata `hidden` implies 3 actor layers");
}

#[test]
fn bad_action_count() {
    let e = load_err(&with_metadata(|m| {
        set(
            m,
            "actions",
            "HOLD,BUY,SELL,SL_TO_BE,TRAIL_TIGHTEN,TRAIL_LOOSEN",
        );
        set(m, "phase", "2");
        set(m, "obs_dim", "231");
    }));
    // Phase 2 needs 231 inputs; the tensors take 225.
    assert!(
        matches!(e, PolicyError::TensorShapeMismatch { .. }),
        "{e:?}"
    );
}

#[test]
fn bad_metadata_key() {
    let e = load_err(&with_metadata(|m| m.retain(|(k, _)| k != "norm.eps")));
    assert_eq!(
        e,
        PolicyError::Metadata(MetadataError::Missing { key: "norm.eps" })
    );
    let e = load_err(&with_metadata(|m| set(m, "activation", "gelu")));
    assert!(
        matches!(
            e,
            PolicyError::Metadata(MetadataError::Invalid {
                key: "activation",
                ..
            })
        ),
        "{e:?}"
    );
    let e = load_err(&with_metadata(|m| set(m, "instrument", "N\\u0051")));
    assert_eq!(e, PolicyError::EscapedMetadata { key: "instrument" });
}

#[test]
fn bad_variance() {
    let e = load_err(&with_tensors(|t| t.last_mut().unwrap().values[7] = -1.0));
    assert_eq!(e, PolicyError::NonPositiveVariance { index: 7 });
}

#[test]
fn bad_duplicate_tensor() {
    let e = load_err(&with_tensors(|t| {
        t.push(tensor("actor.0.bias", &[4], vec![0.0; 4]))
    }));
    assert!(
        matches!(
            e,
            PolicyError::Checkpoint(SafetensorsError::DuplicateTensor { .. })
        ),
        "{e:?}"
    );
}
