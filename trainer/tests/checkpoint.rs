//! Checkpoints: burn's actor equals the runtime's forward on real
//! observations (parity), Python reproduces the logits from the file alone
//! (interop), phase-2 transfer keeps the old weights, and bad `--init`
//! checkpoints are clear user errors.

mod common;

use std::sync::Arc;

use burn::tensor::{Tensor, TensorData};
use nq_formats::checkpoint::Activation;
use nq_formats::SimConfig;
use nq_runtime::policy::{Checkpoint as RtCheckpoint, Policy, PolicyScratch};
use nq_trainer::checkpoint::{self, Checkpoint};
use nq_trainer::env::{MarketData, MarketEnv};
use nq_trainer::norm::normalize_rows;
use nq_trainer::ppo::HostAgent;
use nq_trainer::rng::Rng;
use nq_trainer::train::{policy_metadata, train, RunOptions, TrainError};
use nq_trainer::{CpuBackend, TrainConfig};

type Inner = burn::backend::NdArray<f32>;

/// Real observations (with positions opened along the way) and their masks.
fn real_observations(count: usize) -> (Vec<f32>, Vec<nq_runtime::ActionMask>) {
    let data =
        Arc::new(MarketData::from_bars(common::real_bars(3000), &SimConfig::default()).unwrap());
    assert!(
        !data.sessions.is_empty(),
        "the real bars give a session after warm-up"
    );
    let mut env =
        MarketEnv::new(data, SimConfig::default(), 1, false, 0, Rng::stream(5, 0)).unwrap();
    let mut obs = vec![0.0f32; 225];
    let mut fin = vec![0.0f32; 225];
    let mut mask = env.start_session(0, &mut obs);
    let (mut all, mut masks) = (Vec::new(), Vec::new());
    let mut rng = Rng::stream(9, 9);
    for _ in 0..count {
        all.extend_from_slice(&obs);
        masks.push(mask);
        let valid: Vec<u8> = (0..3).filter(|a| mask.allows_code(*a as usize)).collect();
        let a = valid[rng.below(valid.len())];
        mask = env.step(a, &mut obs, &mut fin).3;
    }
    (all, masks)
}

/// A checkpoint with non-trivial weights (the actor head is scaled up so the
/// logits are far from zero) and normaliser statistics from real data.
fn sample_checkpoint(obs: &[f32], activation: Activation, shared_trunk: bool) -> Checkpoint {
    let cfg = TrainConfig {
        activation: activation.name().into(),
        shared_trunk,
        ..TrainConfig::default()
    };
    let d = cfg.validate().unwrap();
    let mut rng = Rng::stream(11, 0);
    let mut agent = HostAgent::init(225, &[256, 256], 3, activation, shared_trunk, &mut rng);
    for w in &mut agent.actor.layers.last_mut().unwrap().weight {
        *w *= 100.0;
    }
    let rows = obs.len() / 225;
    let mut mean = vec![0.0f32; 225];
    let mut var = vec![0.0f32; 225];
    for r in obs.chunks(225) {
        for (m, x) in mean.iter_mut().zip(r) {
            *m += x / rows as f32;
        }
    }
    for r in obs.chunks(225) {
        for ((v, x), m) in var.iter_mut().zip(r).zip(&mean) {
            *v += (x - m) * (x - m) / rows as f32;
        }
    }
    Checkpoint {
        agent,
        obs_mean: mean,
        obs_var: var,
        metadata: policy_metadata(&cfg, &d, 7, 1234).unwrap(),
        optim: None,
    }
}

fn burn_logits(ck: &Checkpoint, obs: &[f32]) -> Vec<f32> {
    let mut x = obs.to_vec();
    normalize_rows(
        &mut x,
        &ck.obs_mean,
        &ck.obs_var,
        ck.metadata.norm_eps,
        ck.metadata.norm_clip,
    );
    let rows = x.len() / 225;
    let actor = ck.agent.actor.to_backend::<Inner>(&Default::default());
    let t: Tensor<Inner, 2> =
        Tensor::from_data(TensorData::new(x, [rows, 225]), &Default::default());
    actor.forward(t).into_data().to_vec::<f32>().unwrap()
}

fn runtime_logits(bytes: &[u8], obs: &[f32], masks: &[nq_runtime::ActionMask]) -> Vec<f32> {
    let ck = RtCheckpoint::parse(bytes).unwrap();
    let policy = Policy::from_checkpoint(&ck).unwrap();
    let mut scratch = PolicyScratch::new();
    obs.chunks(225)
        .zip(masks)
        .flat_map(|(o, &m)| {
            let out = policy.forward(o, m, &mut scratch).unwrap();
            out.logits()[..3].to_vec()
        })
        .collect()
}

/// The hidden activation of the policy the runtime builds from `bytes`.
fn runtime_activation(bytes: &[u8]) -> Activation {
    let ck = RtCheckpoint::parse(bytes).unwrap();
    Policy::from_checkpoint(&ck).unwrap().metadata().activation
}

fn assert_parity(ck: &Checkpoint, bytes: &[u8], obs: &[f32], masks: &[nq_runtime::ActionMask]) {
    let ours = burn_logits(ck, obs);
    let theirs = runtime_logits(bytes, obs, masks);
    let spread = ours.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    assert!(spread > 0.1, "logits are not trivially small ({spread})");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 * a.abs().max(1.0),
            "{:?} logit {i}: burn {a} runtime {b}",
            ck.metadata.activation
        );
    }
}

/// Every network shape the trainer writes: (activation, shared trunk). A
/// shared trunk is stored under both actor and critic names.
const NETWORK_SHAPES: [(Activation, bool); 3] = [
    (Activation::Tanh, false),
    (Activation::Relu, false),
    (Activation::Tanh, true),
];

/// `ck` saved in a fresh folder: the folder, the file and its bytes.
fn saved(ck: &Checkpoint) -> (tempfile::TempDir, std::path::PathBuf, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.safetensors");
    checkpoint::save(&path, ck).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    (dir, path, bytes)
}

#[test]
fn burn_actor_and_runtime_forward_agree_on_real_observations() {
    let (obs, masks) = real_observations(40);
    for (activation, shared) in NETWORK_SHAPES {
        let ck = sample_checkpoint(&obs, activation, shared);
        let (_dir, path, bytes) = saved(&ck);
        assert_eq!(runtime_activation(&bytes), activation);
        assert_parity(&ck, &bytes, &obs, &masks);
        // And the file reads back to the same tensors.
        assert_eq!(checkpoint::load(&path).unwrap(), ck);
    }
    // The two activations really compute different policies from the same weights.
    let (tanh, relu) = (
        burn_logits(&sample_checkpoint(&obs, Activation::Tanh, false), &obs),
        burn_logits(&sample_checkpoint(&obs, Activation::Relu, false), &obs),
    );
    assert!(tanh.iter().zip(&relu).any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
fn a_relu_training_run_writes_a_checkpoint_the_runtime_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::tiny_config(5);
    cfg.activation = "relu".into();
    cfg.updates = 2;
    let opts = RunOptions {
        out: dir.path().join("run"),
        ..RunOptions::default()
    };
    let summary =
        train::<CpuBackend>(&cfg, common::shared_train(3, 2), &opts, &Default::default()).unwrap();
    let bytes = std::fs::read(&summary.checkpoint).unwrap();
    assert_eq!(runtime_activation(&bytes), Activation::Relu);
    let ck = checkpoint::load(&summary.checkpoint).unwrap();
    assert_eq!(ck.agent.actor.activation, Activation::Relu);
    let fresh = HostAgent::init(
        225,
        &[32, 32],
        3,
        Activation::Relu,
        false,
        &mut Rng::stream(5, 0),
    );
    assert_ne!(ck.agent.actor, fresh.actor, "training moved the weights");
    // The head is scaled up so the logits of the barely trained actor are not
    // all tiny; parity of the hidden layers is what is under test.
    let mut ck = ck;
    for w in &mut ck.agent.actor.layers.last_mut().unwrap().weight {
        *w *= 100.0;
    }
    let path = dir.path().join("scaled.safetensors");
    checkpoint::save(&path, &ck).unwrap();
    let (obs, masks) = real_observations(20);
    assert_parity(&ck, &std::fs::read(&path).unwrap(), &obs, &masks);
}

#[test]
fn python_reproduces_the_runtime_logits_from_the_file() {
    let (obs, masks) = real_observations(8);
    for (activation, shared) in NETWORK_SHAPES {
        let ck = sample_checkpoint(&obs, activation, shared);
        let (dir, path, bytes) = saved(&ck);
        let expected = runtime_logits(&bytes, &obs, &masks);
        let case = serde_json::json!({ "obs": obs, "rows": 8, "expected_logits": expected });
        let case_path = dir.path().join("case.json");
        std::fs::write(&case_path, case.to_string()).unwrap();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check_logits.py");
        let out = nq_test_support::python_command()
            .arg(script)
            .arg(&path)
            .arg(&case_path)
            .output()
            .expect("the tests' Python runs");
        assert!(
            out.status.success(),
            "check_logits.py failed ({activation:?}, shared trunk {shared}):\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A fresh phase-1 tanh checkpoint (seed 1, identity normaliser) of a run
/// with these hidden sizes: what `--init` is given.
fn phase1_checkpoint(hidden: &[u32], shared_trunk: bool) -> Checkpoint {
    let cfg = TrainConfig {
        hidden: hidden.to_vec(),
        shared_trunk,
        ..TrainConfig::default()
    };
    let d = cfg.validate().unwrap();
    let mut rng = Rng::stream(1, 0);
    Checkpoint {
        agent: HostAgent::init(225, hidden, 3, Activation::Tanh, shared_trunk, &mut rng),
        obs_mean: vec![0.0; 225],
        obs_var: vec![1.0; 225],
        metadata: policy_metadata(&cfg, &d, 1, 1).unwrap(),
        optim: None,
    }
}

#[test]
fn phase2_transfer_keeps_the_phase1_weights() {
    let old = Checkpoint {
        obs_mean: (0..225).map(|i| i as f32).collect(),
        obs_var: vec![2.0; 225],
        ..phase1_checkpoint(&[32, 32], false)
    };
    let old_agent = old.agent.clone();
    let fresh = HostAgent::init(
        231,
        &[32, 32],
        6,
        Activation::Tanh,
        false,
        &mut Rng::stream(2, 0),
    );
    let path = std::path::Path::new("old.safetensors");
    let (agent, mean, var) = checkpoint::transfer(&old, &fresh, path).unwrap();
    let (o0, n0) = (&old_agent.actor.layers[0], &agent.actor.layers[0]);
    for r in 0..32 {
        assert_eq!(
            &n0.weight[r * 231..r * 231 + 225],
            &o0.weight[r * 225..(r + 1) * 225]
        );
        // The 6 new inputs keep their fresh initialisation.
        assert_eq!(
            &n0.weight[r * 231 + 225..(r + 1) * 231],
            &fresh.actor.layers[0].weight[r * 231 + 225..(r + 1) * 231]
        );
    }
    assert_eq!(agent.actor.layers[1], old_agent.actor.layers[1]);
    let (oh, nh, fh) = (
        &old_agent.actor.layers[2],
        &agent.actor.layers[2],
        &fresh.actor.layers[2],
    );
    assert_eq!(&nh.weight[..3 * 32], &oh.weight[..]);
    assert_eq!(&nh.bias[..3], &oh.bias[..]);
    assert_eq!(
        &nh.weight[3 * 32..],
        &fh.weight[3 * 32..],
        "new action rows stay fresh"
    );
    assert_eq!(agent.critic.layers[2], old_agent.critic.layers[2]);
    assert_eq!(&mean[..225], &old.obs_mean[..]);
    assert_eq!((&mean[225..], &var[225..]), (&[0.0; 6][..], &[1.0; 6][..]));
}

#[test]
fn mismatched_init_is_a_user_error_naming_the_shapes() {
    let dir = tempfile::tempdir().unwrap();
    // A phase-1 checkpoint with 64-wide layers...
    let old = phase1_checkpoint(&[64, 64], false);
    let init = dir.path().join("p1.safetensors");
    checkpoint::save(&init, &old).unwrap();
    // ...into a phase-2 run with 32-wide layers.
    let mut cfg = common::tiny_config(1);
    cfg.phase = 2;
    let opts = RunOptions {
        out: dir.path().join("run"),
        init: Some(init.clone()),
        ..RunOptions::default()
    };
    match train::<CpuBackend>(&cfg, common::shared_train(3, 1), &opts, &Default::default()) {
        Err(TrainError::User(e)) => {
            assert!(
                e.0.contains("p1.safetensors") && e.0.contains("[225, 64, 64, 3]"),
                "{e}"
            );
        }
        other => panic!("expected a user error, got {other:?}"),
    }
    // A file that is not a checkpoint at all.
    std::fs::write(&init, b"not safetensors").unwrap();
    match train::<CpuBackend>(&cfg, common::shared_train(3, 1), &opts, &Default::default()) {
        Err(TrainError::User(e)) => assert!(e.0.contains("not a safetensors file"), "{e}"),
        other => panic!("expected a user error, got {other:?}"),
    }
}

/// The raw tensors of a written checkpoint (name -> little-endian bytes) and its metadata.
fn raw_tensors(
    path: &std::path::Path,
) -> (
    std::collections::HashMap<String, Vec<u8>>,
    std::collections::HashMap<String, String>,
) {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.data().to_vec()))
        .collect();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    (tensors, header.metadata().clone().unwrap_or_default())
}

#[test]
fn a_shared_trunk_run_writes_one_trunk_under_both_names_and_phase_2_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::tiny_config(6);
    cfg.shared_trunk = true;
    cfg.updates = 2;
    let p1 = train::<CpuBackend>(
        &cfg,
        common::shared_train(3, 2),
        &RunOptions {
            out: dir.path().join("p1"),
            ..RunOptions::default()
        },
        &Default::default(),
    )
    .unwrap();
    let mut p2_cfg = cfg.clone();
    p2_cfg.phase = 2;
    let p2 = train::<CpuBackend>(
        &p2_cfg,
        common::shared_train(3, 2),
        &RunOptions {
            out: dir.path().join("p2"),
            init: Some(p1.checkpoint.clone()),
            ..RunOptions::default()
        },
        &Default::default(),
    )
    .unwrap();
    let fresh = HostAgent::init(
        225,
        &[32, 32],
        3,
        Activation::Tanh,
        true,
        &mut Rng::stream(6, 0),
    );
    for path in [&p1.checkpoint, &p2.checkpoint] {
        let (tensors, meta) = raw_tensors(path);
        assert_eq!(meta.get("shared_trunk").map(String::as_str), Some("true"));
        for name in ["0.weight", "0.bias", "1.weight", "1.bias"] {
            assert_eq!(
                tensors[&format!("actor.{name}")],
                tensors[&format!("critic.{name}")],
                "{name} in {}",
                path.display()
            );
        }
        assert_ne!(
            tensors["actor.2.weight"].len(),
            tensors["critic.2.weight"].len()
        );
        let ck = checkpoint::load(path).unwrap();
        assert!(ck.agent.shared_trunk);
        // The runtime reads it as any checkpoint (the key is the trainer's).
        assert_eq!(
            runtime_activation(&std::fs::read(path).unwrap()),
            Activation::Tanh
        );
    }
    let trained = checkpoint::load(&p1.checkpoint).unwrap();
    assert_ne!(
        trained.agent.actor.layers[0], fresh.actor.layers[0],
        "the trunk trained"
    );
    // Phase 2 started from the phase-1 trunk: a fresh phase-2 trunk would be
    // far from it after two updates; its 225 old inputs' weights stay close.
    let p2_ck = checkpoint::load(&p2.checkpoint).unwrap();
    let (old, new) = (&trained.agent.actor.layers[0], &p2_ck.agent.actor.layers[0]);
    let drift = (0..32)
        .flat_map(|r| (0..225).map(move |c| (r, c)))
        .map(|(r, c)| (old.weight[r * 225 + c] - new.weight[r * 231 + c]).abs())
        .fold(0.0f32, f32::max);
    assert!(drift < 0.05, "phase 2 kept the phase-1 trunk ({drift})");
}

#[test]
fn shared_and_separate_checkpoints_do_not_mix_and_a_split_trunk_is_refused() {
    let old = phase1_checkpoint(&[16, 16], true);
    let path = std::path::Path::new("shared.safetensors");
    // Phase-2 transfer keeps one trunk...
    let fresh = HostAgent::init(
        231,
        &[16, 16],
        6,
        Activation::Tanh,
        true,
        &mut Rng::stream(2, 0),
    );
    let (agent, _, _) = checkpoint::transfer(&old, &fresh, path).unwrap();
    assert!(agent.shared_trunk);
    assert_eq!(agent.actor.layers[..2], agent.critic.layers[..2]);
    assert_eq!(agent.actor.layers[1], old.agent.actor.layers[1]);
    // ...and refuses to turn it into two networks or the reverse.
    let separate = HostAgent::init(
        231,
        &[16, 16],
        6,
        Activation::Tanh,
        false,
        &mut Rng::stream(2, 0),
    );
    let e = checkpoint::transfer(&old, &separate, path).unwrap_err();
    assert!(
        e.0.contains("shared trunk") && e.0.contains("separate"),
        "{e}"
    );

    // A file marked shared whose two trunk copies differ is not one trunk.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("split.safetensors");
    let mut split = old.clone();
    split.agent.critic.layers[1].bias[0] += 0.5;
    checkpoint::save(&file, &split).unwrap();
    let e = checkpoint::load(&file).unwrap_err();
    assert!(
        e.0.contains("split.safetensors")
            && e.0.contains("critic.1")
            && e.0.contains("shared_trunk"),
        "{e}"
    );
    // Unmarked, the same tensors are two separate networks.
    split.agent.shared_trunk = false;
    checkpoint::save(&file, &split).unwrap();
    assert!(!checkpoint::load(&file).unwrap().agent.shared_trunk);
    let (_, meta) = raw_tensors(&file);
    assert!(
        !meta.contains_key("shared_trunk"),
        "separate files carry no key"
    );
}
